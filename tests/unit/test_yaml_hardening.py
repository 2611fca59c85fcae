"""The hardened YAML reader (gxo/config/yamlsafe.py) and everything that reads YAML through it.

(a) The libyaml fast path reads every text exactly as the ruamel reference does
    (data and positions), or hands it over — a differential property.
(b) Alias bombs, deep nesting and huge integers are refused — clearly, quickly,
    with a line and column — by playbooks, vars files, ``-e @file``,
    ``|from_yaml`` and ``data:parse format: yaml``.
(c) Only regular files of bounded size are read as playbooks or vars files: a
    FIFO, ``/dev/zero`` and directories are refused, never a hang.
"""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from gxo.config import _yamlfast, yamlsafe
from gxo.config.loader import load_playbook
from gxo.config.variables import load_vars_file, parse_extra_vars
from gxo.config.yamlsafe import _parse_ruamel, load_yaml_text, parse_yaml, read_text_file
from gxo.errors import ConfigError, GxoError, PlaybookSyntaxError, TemplateError, UsageError
from gxo.modules.testkit import run_module
from gxo.template.engine import TemplateEngine
from tests.unit.test_fuzz_loader import mutated

ROOT = Path(__file__).resolve().parents[2]
REAL = sorted([*ROOT.glob("examples/*.yaml"), *ROOT.glob("tests/playbooks/**/*.yaml")])
DIFF = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def bomb(levels: int = 9, width: int = 10) -> str:
    """The "billion laughs": 10 ** 9 strings from a 500-byte text."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = "n: " + "7" * 100_000 + "\n"


# -- (a) the fast path reads what ruamel reads ------------------------------------------


def fast(text: str, *, string_keys: bool = True, all_documents: bool = False) -> Any:
    try:
        return _yamlfast.parse(text, string_keys=string_keys, all_documents=all_documents)
    except _yamlfast.Fallback:
        return "fallback"


def reference(text: str, *, string_keys: bool = True, all_documents: bool = False) -> Any:
    try:
        return _parse_ruamel(text, "f", string_keys=string_keys, all_documents=all_documents)
    except GxoError as exc:
        return f"error: {exc}"


def check_same(text: str, *, lenient: bool = False, **kw: Any) -> None:
    """What the fast path reads, ruamel reads the same. ``lenient``: malformed text that
    libyaml reads and ruamel refuses (``|#``: a comment without a space) is not a failure."""
    got = fast(text, **kw)
    if got == "fallback":
        return
    ref = reference(text, **kw)
    if lenient and isinstance(ref, str) and ref.startswith("error: "):
        return
    assert got == ref, text


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_playbooks_take_the_fast_path_and_read_the_same(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    got = fast(text)
    assert got != "fallback", f"{path.name} fell back to the slow parser"
    assert got == reference(text)


def test_the_bench_playbooks_take_the_fast_path() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_loader import playbook_text

    for style in ("mixed", "block", "flow"):
        text = playbook_text(60, style)
        assert fast(text) == reference(text) != "fallback"


@pytest.mark.parametrize(
    "text",
    [
        "a: ~\nb: null\nc: true\nd: False\ne: 1.5\nf: 1.\ng: -3\nh: +4\ni: 1e3\nj: yes\nk: on\nl: 1:20\n",
        "a: .5\nb: 0o17\nc: 017\nd: 1_000\ne: .inf\nf: 0x1F\ng: 2024-01-02\nh: 2024-01-02 10:11:12\n",
        "a: !!binary aGVsbG8=\nb: !!str 3\nc: ! 4\nd: !!int '5'\ne: !custom x\n",
        "base: &b {x: 1}\nuse: {<<: *b, y: 2}\nk: &t true\nj: *t\n",
        "a: b\na: c\n",
        "true: 1\n",
        "1: a\n",
        "? [a]\n: b\n",
        "%YAML 1.1\n---\na: yes\n",
        "x: ééé\ny: {é: 1, z: [ü, {ß: 2}]}\n",
        "- - a\n  - b\n- c\n-\n  - z\n",
        "a: |\n  x\n   y\nb: >-\n  a\n  b\n\n  c\nc: 'q''s'\nd: \"\\t\\u00e9\"\n",
        "a: plain\n  multi line\nb: # comment\n  - 1\n",
        "{ module: control:identity, x: a:b, u: 'http://h:1/' }\n",
        "a: b\n---\nc: d\n",
        "",
        "---\n",
        "a:\n",
        "- 1\n- [2, {3: 4}]\n",
        "[" * 95 + "]" * 95,
        "a: " + "9" * 150 + "\n",
    ],
)
def test_edge_cases_read_the_same_or_fall_back(text: str) -> None:
    for string_keys in (True, False):
        for all_documents in (False, True):
            check_same(text, string_keys=string_keys, all_documents=all_documents)


def _dumped(data: Any, flow: bool | None, width: int) -> str:
    yaml = YAML(typ="rt")
    yaml.default_flow_style = flow
    yaml.width = width
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


TRICKY = st.sampled_from(
    ["yes", "no", "on", "1:20", "0o7", "010", "1_0", "~", "null", "2024-01-02", "a: b", "#x",
     "- x", "{a}", "[1]", "'q'", '"d"', "tab\tin", "line\nbreak", " lead", "trail ", "é",
     ".5", "1e3", "-", "<<", "=", "!x", "&a", "*a", "%p", "@", "`", "?", "true", "1.0"]
)  # fmt: skip
SCALARS = st.none() | st.booleans() | st.integers() | TRICKY | st.text(max_size=12)
SCALARS |= st.floats(allow_nan=False, allow_infinity=False)
KEYS = TRICKY | st.text(min_size=1, max_size=8)
DATA = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)


@DIFF
@given(data=DATA, flow=st.sampled_from([None, True, False]), width=st.sampled_from([20, 80]))
def test_dumped_data_reads_the_same_through_both_parsers(data: Any, flow: Any, width: int) -> None:
    text = _dumped(data, flow, width)
    check_same(text)
    check_same(text, string_keys=False)


YAMLISH = st.text(alphabet=list(":-{}[]#&*!|>'\"\n\t %@`,?.=~<ab01xyzé\\"), max_size=120)


@DIFF
@given(text=YAMLISH)
@example(text="a: [b\n")
@example(text="- {a: b}: c\n")
@example(text="a:\tb\n")
def test_arbitrary_text_reads_the_same_or_falls_back(text: str) -> None:
    check_same(text, lenient=True)
    check_same(text, lenient=True, string_keys=False, all_documents=True)


def _load_outcome(text: str) -> str:
    try:
        loaded = load_playbook(text=text, name="pb.yaml")
    except ConfigError as exc:
        return f"error: {exc}"
    return repr((loaded.raw, sorted(loaded.positions.items(), key=repr)))


@settings(max_examples=60, deadline=None, database=None)
@given(text=mutated())
def test_mutated_playbooks_load_the_same_with_either_parser(text: str) -> None:
    """Whole loads, errors included (file:line:col), do not depend on the parser taken."""
    with_fast_path = _load_outcome(text)
    original = _yamlfast.parse

    def no_fast_path(*args: Any, **kw: Any) -> Any:
        raise _yamlfast.Fallback

    _yamlfast.parse = no_fast_path  # type: ignore[assignment]
    try:
        reference_only = _load_outcome(text)
    finally:
        _yamlfast.parse = original
    # Malformed YAML that libyaml reads and ruamel refuses (``|#``) is the one allowed difference.
    if "YAML syntax error" not in reference_only:
        assert with_fast_path == reference_only


# -- (b) refusals: bombs, depth, huge integers -------------------------------------------


def refused_quickly(call: Any, error: type[BaseException], match: str) -> BaseException:
    started = time.perf_counter()
    with pytest.raises(error, match=match) as info:
        call()
    assert time.perf_counter() - started < 2.0
    assert "Traceback" not in str(info.value)
    return info.value


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (bomb(), r"f:\d+:\d+: document too large .* alias expansion"),
        (DEEP, r"f:1:102: YAML syntax error: nesting deeper than 100 levels"),
        (HUGE_INT, r"f:1:4: YAML value cannot be read: Exceeds the limit"),
    ],
    ids=["bomb", "deep", "huge-int"],
)
def test_the_shared_reader_refuses_with_a_location(text: str, match: str) -> None:
    refused_quickly(lambda: parse_yaml(text, "f"), PlaybookSyntaxError, match)
    refused_quickly(
        lambda: load_yaml_text(text, "f", all_documents=True), PlaybookSyntaxError, match
    )


def test_a_huge_integer_in_a_playbook_is_a_located_error_not_a_traceback() -> None:
    text = 'schemaVersion: "1.0.0"\nname: x\nworkloads: []\nvars:\n  n: ' + "1" * 5000 + "\n"
    err = refused_quickly(lambda: load_playbook(text=text, name="pb.yaml"), ConfigError, "pb.yaml")
    assert str(err).startswith("pb.yaml:5:6: YAML value cannot be read")


def test_a_mapping_key_holding_a_mapping_is_a_located_error_not_a_traceback() -> None:
    # ruamel raised TypeError (unhashable CommentedMap) for this: a traceback.
    text = 'schemaVersion: "1.0.0"\nname: x\nworkloads:\n  - name: a\n?\n  - name: b\n'
    err = refused_quickly(lambda: load_playbook(text=text, name="pb.yaml"), ConfigError, "pb.yaml")
    assert str(err) == (
        "pb.yaml:6:3: YAML syntax error: a mapping key must be a scalar, not a list or mapping"
    )
    with pytest.raises(PlaybookSyntaxError, match="a mapping key must be a scalar"):
        load_yaml_text("? [{a: b}]\n: c\n")


def test_a_crash_inside_ruamel_is_a_located_syntax_error() -> None:
    # ruamel fails an internal assert on this (a block scalar header after a comment).
    text = "# c\n| #\n#   x\nschemaVersion: '1.0.0'\nname: a\n"
    with pytest.raises(PlaybookSyntaxError, match=r"^pb\.yaml:\d+:\d+: YAML syntax error: "):
        load_playbook(text=text, name="pb.yaml")


def test_an_anchored_boolean_stays_a_boolean() -> None:
    # ruamel reads an anchored `true` as ScalarBoolean (an int): it used to become 1.
    assert reference("k: &t true\nj: *t\n")[0] == {"k": True, "j": True}


@pytest.mark.parametrize("text", [bomb(), DEEP, HUGE_INT], ids=["bomb", "deep", "huge-int"])
def test_from_yaml_refuses_bombs_deep_nesting_and_huge_integers(text: str) -> None:
    engine = TemplateEngine()
    err = refused_quickly(
        lambda: engine.render("{{ doc | from_yaml }}", {"doc": text}),
        TemplateError,
        r"from_yaml:\d+:\d+: ",
    )
    assert "doc | from_yaml" in str(err)
    assert engine.render("{{ doc | from_yaml }}", {"doc": "a: [1, {b: c}]"}) == {
        "a": [1, {"b": "c"}]
    }


@pytest.mark.parametrize("text", [bomb(), DEEP, HUGE_INT], ids=["bomb", "deep", "huge-int"])
async def test_data_parse_yaml_refuses_bombs_deep_nesting_and_huge_integers(text: str) -> None:
    started = time.perf_counter()
    r = await run_module("data:parse", {"format": "yaml", "content": text})
    assert time.perf_counter() - started < 5.0
    assert r.status == "Failed"
    assert re.search(r"invalid YAML: .* at line \d+ column \d+", r.error), r.error


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            bomb().encode(),
            r"vars file is not valid YAML/JSON: .*v\.yaml:\d+:\d+: document too large",
        ),
        (DEEP.encode(), r"v\.yaml:1:102: .*nesting deeper than 100"),
        (HUGE_INT.encode(), r"v\.yaml:1:4: YAML value cannot be read"),
        (b"a: 1\nb: \xff\xfe\x00\x01\n", r"v\.yaml:2:4: vars file is not UTF-8 text"),
        (b"a: \x00\n", r"v\.yaml:1:4: .*unacceptable character #x0000"),
    ],
    ids=["bomb", "deep", "huge-int", "binary", "nul"],
)
def test_vars_files_use_the_hardened_reader(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "v.yaml"
    path.write_bytes(content)
    refused_quickly(lambda: load_vars_file(path), UsageError, match)
    refused_quickly(lambda: parse_extra_vars([f"@{path}"]), UsageError, match)


def test_extra_vars_json_that_json_cannot_hold_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="invalid JSON"):
        parse_extra_vars(['{"a": ' + "1" * 5000 + "}"])
    with pytest.raises(UsageError, match="invalid JSON"):
        parse_extra_vars(['{"a": ' + "[" * 100_000])
    assert parse_extra_vars(["x=" + bomb().replace("\n", " ")])["x"].startswith("a0:")


# -- (c) only regular files, of bounded size ----------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    return path


def test_non_regular_files_are_refused(tmp_path: Path, fifo: Path) -> None:
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    refused_quickly(
        lambda: read_text_file(fifo, "playbook"), ConfigError, "not a regular file \\(a FIFO\\)"
    )
    refused_quickly(
        lambda: load_playbook(zero), ConfigError, "not a regular file \\(a character device\\)"
    )
    refused_quickly(lambda: load_playbook(tmp_path), ConfigError, "playbook path is a directory")
    refused_quickly(lambda: load_vars_file(fifo), UsageError, "vars file is not a regular file")


def test_files_over_the_size_cap_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yamlsafe, "MAX_FILE_BYTES", 1024)
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 2000 + "\n")
    with pytest.raises(ConfigError, match=r"playbook .*big\.yaml is too large"):
        load_playbook(big)
    with pytest.raises(UsageError, match=r"vars file .*big\.yaml is too large"):
        load_vars_file(big)
    (tmp_path / "small.yaml").write_text("a: 1\n")
    assert load_vars_file(tmp_path / "small.yaml") == {"a": 1}


PLAYBOOK = 'schemaVersion: "1.0.0"\nname: p\nvars: { a: 0 }\nworkloads:\n  - { name: w, process: { module: control:identity, params: { a: "{{ a }}" } } }\n'


@pytest.mark.parametrize("command", ["validate", "run"])
def test_cli_refuses_a_fifo_playbook_without_hanging(gxo: Any, fifo: Path, command: str) -> None:
    proc = gxo(command, str(fifo), timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file (a FIFO)" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: os.mkfifo(d / "v.yaml"), "vars file is not a regular file (a FIFO)"),
        (lambda d: (d / "v.yaml").symlink_to("/dev/zero"), "(a character device)"),
        (lambda d: (d / "v.yaml").write_text(bomb()), "document too large"),
        (lambda d: (d / "v.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00"), "not UTF-8 text"),
        (lambda d: (d / "v.yaml").write_text(DEEP), "nesting deeper than 100 levels"),
    ],
    ids=["fifo", "dev-zero", "bomb", "binary", "deep"],
)
@pytest.mark.parametrize("flag", ["--vars-file", "-e"])
def test_cli_refuses_bad_vars_files_with_exit_2(
    gxo: Any, tmp_path: Path, make: Any, message: str, flag: str
) -> None:
    pb = tmp_path / "pb.yaml"
    pb.write_text(PLAYBOOK)
    make(tmp_path)
    vars_arg = str(tmp_path / "v.yaml")
    proc = gxo(
        "run", str(pb), flag, vars_arg if flag == "--vars-file" else f"@{vars_arg}", timeout=30
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
