"""Fuzzing the playbook loader, the legacy shim and ``gxo migrate``.

Property: ``load_playbook`` (and ``migrate_text``) either return or raise a
``ConfigError`` whose message names the source, with a line number for YAML
syntax errors — never another exception, never a hang (each call < 2 s).
"""

from __future__ import annotations

import io
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gxo.config.loader import MAX_ALIAS_EXPANSION, load_playbook
from gxo.config.migrate import migrate_text
from gxo.errors import ConfigError, MigrationError, PlaybookSyntaxError
from gxo.modules.base import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    [*ROOT.glob("examples/*.gxo.yaml"), *(ROOT / "tests" / "playbooks" / "legacy").glob("*.yaml")]
)
SEEDS = [p.read_text(encoding="utf-8") for p in SOURCES]
NAME = "fuzz.gxo.yaml"
TIME_LIMIT = 2.0
FUZZ = settings(
    max_examples=80,
    deadline=None,  # time is bounded per call below
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def check_load(text: str | None = None, path: Path | None = None) -> Any:
    """The property itself, for one input."""
    started = time.perf_counter()
    source = str(path) if path is not None else NAME
    try:
        return load_playbook(path, text=text, name=None if path is not None else NAME)
    except ConfigError as exc:
        message = str(exc)
        assert message, "an error without a message"
        assert "Traceback" not in message
        if isinstance(exc, PlaybookSyntaxError):
            assert re.search(rf"{re.escape(source)}(:\d+)", message), message
        else:
            assert source in message or "playbook not found" in message, message
        return exc
    finally:
        elapsed = time.perf_counter() - started
        assert elapsed < TIME_LIMIT, f"load took {elapsed:.2f}s"


@pytest.fixture(autouse=True, scope="module")
def _modules_imported() -> None:
    """The first load imports every module file; that is start-up, not the loader's speed."""
    REGISTRY.load_builtins()


def check_migrate(text: str) -> None:
    started = time.perf_counter()
    try:
        new_text, warnings = migrate_text(text, NAME)
    except MigrationError as exc:
        # ruamel cannot write some exotic strings (e.g. with U+0085) back as they were read;
        # refusing with the line is right, writing a file that means something else is not.
        assert re.match(rf"{NAME}:\d+:\d+: this value cannot be rewritten", str(exc)), str(exc)
    except ConfigError as exc:
        assert str(exc).startswith(NAME), str(exc)
    else:
        assert all(w.startswith(f"{NAME}:") or w.startswith(NAME) for w in warnings)
        assert migrate_text(new_text, NAME) == (new_text, [])  # idempotent
    finally:
        assert time.perf_counter() - started < 2 * TIME_LIMIT


# -- (a) arbitrary text and bytes ------------------------------------------------------------

YAMLISH = st.text(alphabet=list(":-{}[]#&*!|>'\"\n\t %@`,?.=~<ab01xyz\\"), max_size=200)


@FUZZ
@given(text=st.text(max_size=300) | YAMLISH)
@example(text="\x00")
@example(text="a: &x [*x]")
@example(text="a: !!python/object:os.system ls")
@example(text="%YAML 9.9\n---\na: 1")
@example(text="- " * 5000)
@example(text="[" * 5000)
@example(text="{a: 1, a: 2}")
@example(text="? [a]\n: 1")
def test_arbitrary_text(text: str) -> None:
    check_load(text=text)


@FUZZ
@given(data=st.binary(max_size=300))
@example(data=b"\xff\xfe\x00n\x00a")
@example(data=b"name: \xc3\x28")
def test_arbitrary_bytes_from_a_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / NAME
        path.write_bytes(data)
        check_load(path=path)


# -- (b) structurally plausible playbooks ----------------------------------------------------

TOP_KEYS = [
    "schemaVersion",
    "name",
    "vars",
    "state_policy",
    "channel_policy",
    "workloads",
    "tasks",
    "task_policy",
]
WORKLOAD_KEYS = [
    "name", "lifecycle", "process", "register", "when", "loop", "loop_control", "retry", "timeout",
    "ignore_errors", "stream_inputs", "depends_on", "state_policy", "security_context",
    "type", "params", "policy", "policy_ref",
]  # fmt: skip
NESTED_KEYS = [
    "module", "params", "policy", "attempts", "delay", "backoff_factor", "max_delay", "jitter", "on_error",
    "loop_var", "parallel", "buffer_size", "overflow_strategy", "access_mode", "restart_policy", "cron",
    "command", "args", "items", "condition", "skip_on_no_input", "bogus",
]  # fmt: skip
WORDS = [
    "1.0.0", "v1.0.0", "0.1.2", "run_once", "supervise", "scheduled", "exec", "control:identity",
    "control:assert", "generate:from_list", "stream:join", "data:join", "passthrough", "nosuch:module",
    "a", "b", "w1", "10ms", "1m30s", "-1s", "bad duration", "block", "error", "drop_new", "deep_copy",
    "{{ x }}", "{{ .x.y }}", "{{ eq .a \"b\" }}", "{{ _gxo.workloads.a.status }}", "{{ nope }}",
    "{{ ._gxo.tasks.a.status }}", "{% if %}", "{{ 1 +", "true", "echo", "", " ", "é", "a b",
]  # fmt: skip

leaf = (
    st.sampled_from(WORDS)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.booleans()
    | st.none()
    | st.text(max_size=6)
)


def mappings(keys: list[str], inner: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), inner, max_size=6)


nested = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=3) | mappings(NESTED_KEYS, inner),
    max_leaves=10,
)
workload = mappings(WORKLOAD_KEYS, nested | mappings(NESTED_KEYS, nested))
playbook = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": st.sampled_from(["1.0.0", "v1.0.0", "0.1.2"]) | leaf,
        "name": st.sampled_from(["fuzz", "x"]) | leaf,
        "vars": mappings(["x", "y", "a", "items", "bad-name", "1x"], nested) | leaf,
        "state_policy": mappings(NESTED_KEYS, nested) | leaf,
        "channel_policy": mappings(NESTED_KEYS, nested) | leaf,
        "workloads": st.lists(workload, max_size=4) | leaf,
        "tasks": st.lists(workload, max_size=4) | leaf,
        "task_policy": mappings(NESTED_KEYS, nested) | leaf,
        "bogus": leaf,
    },
)


def dump(data: Any, share: bool) -> str:
    """YAML text of ``data``; with ``share``, one value is reused so ruamel writes an anchor and an alias."""
    from ruamel.yaml import YAML

    if share and isinstance(data, dict) and isinstance(data.get("vars"), dict):
        shared = {"shared": list(data["vars"].values())}
        data["vars"]["alias_a"] = shared
        if isinstance(data.get("workloads"), list) and data["workloads"]:
            data["workloads"][0]["params"] = shared
        if isinstance(data.get("tasks"), list) and data["tasks"]:
            data["tasks"][-1]["params"] = shared
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


@FUZZ
@given(data=playbook, share=st.booleans())
def test_structurally_plausible_playbooks(data: dict[str, Any], share: bool) -> None:
    check_load(text=dump(data, share))


@FUZZ
@given(data=playbook.filter(lambda d: "tasks" in d), share=st.booleans())
def test_plausible_legacy_playbooks_through_the_shim_and_migrate(
    data: dict[str, Any], share: bool
) -> None:
    text = dump(data, share)
    check_load(text=text)
    check_migrate(text)


@settings(max_examples=15, deadline=None, database=None)
@given(levels=st.integers(min_value=1, max_value=12), width=st.integers(min_value=2, max_value=12))
@example(levels=9, width=10)  # the "billion laughs"
def test_alias_expansion_bombs_are_refused_quickly(levels: int, width: int) -> None:
    lines = ['schemaVersion: "1.0.0"', "name: bomb", "vars:", "  l0: &l0 [lol]"]
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [{', '.join(f'*l{i - 1}' for _ in range(width))}]")
    lines += [
        "workloads:",
        "  - name: a",
        f"    process: {{module: control:identity, params: {{x: *l{levels - 1}}}}}",
    ]
    result = check_load(text="\n".join(lines) + "\n")
    sizes = [2]  # l0: the list and its scalar
    for _ in range(1, levels):
        sizes.append(1 + width * sizes[-1])
    if sum(sizes) + sizes[-1] > MAX_ALIAS_EXPANSION:
        assert isinstance(result, ConfigError) and "document too large" in str(result)
        assert re.match(rf"{NAME}:\d+:\d+: ", str(result)), str(result)


# -- (c) mutations of real playbooks ---------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(SEEDS)).splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not lines:
            break
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "indent", "dedent", "insert", "swap"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = " " * draw(st.integers(min_value=1, max_value=4)) + lines[i]
        elif op == "dedent":
            lines[i] = lines[i][draw(st.integers(min_value=1, max_value=4)) :]
        elif op == "insert":
            pos = draw(st.integers(min_value=0, max_value=len(lines[i])))
            char = draw(st.sampled_from(list(":-{}[]#&*!|>'\"\t ,.%@`?")) | st.characters())
            lines[i] = lines[i][:pos] + char + lines[i][pos:]
        else:
            j = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)


@FUZZ
@given(text=mutated())
def test_mutated_real_playbooks(text: str) -> None:
    check_load(text=text)
    check_migrate(text)


def test_the_seeds_are_real_playbooks() -> None:
    assert len(SEEDS) >= 4
    loaded = [check_load(text=seed) for seed in SEEDS]
    assert sum(not isinstance(r, ConfigError) for r in loaded) >= 4
