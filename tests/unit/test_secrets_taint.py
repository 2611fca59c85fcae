"""Secrets stay hidden in every form they take (issue 8, "Secrets").

Derived values (taint through the sandbox), encoded forms outside templates,
excerpts cut after redaction, secrets registered before anything runs, and the
report/dict-key redaction that mutants once escaped.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from gxo.engine.events import EventBus
from gxo.engine.report import build_report
from gxo.modules.testkit import run_playbook_text
from gxo.template import TemplateEngine
from gxo.template.secrets import REDACTED, SecretRegistry, SecretStr

TOKEN = "tok-Abc/9+xY=zq 42"
PEM = (
    "-----BEGIN KEY-----\n"
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX\n"
    "6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
    "-----END KEY-----\n"
)


def engine(**values: str) -> TemplateEngine:
    return TemplateEngine(SecretRegistry(provider=values.get))


@pytest.mark.parametrize(
    ("template", "derived"),
    [
        ("{{ secret('T') | upper }}", TOKEN.upper()),
        ("{{ secret('T') | lower }}", TOKEN.lower()),
        ("{{ secret('T') | title }}", "Tok-Abc/9+xy=zq 42"),
        ("{{ secret('T') | capitalize }}", TOKEN.capitalize()),
        ("{{ secret('T') | b64encode }}", base64.b64encode(TOKEN.encode()).decode()),
        ("{{ secret('T') | urlencode }}", "tok-Abc/9%2BxY%3Dzq%2042"),
        ("{{ ('<' ~ secret('T')) | escape }}", "&lt;" + TOKEN),
        ("{{ secret('T') | replace('-', '_') }}", TOKEN.replace("-", "_")),
        ("{{ ('  ' ~ secret('T') ~ ' ') | trim }}", TOKEN),
        ("{{ secret('T')[1:] }}", TOKEN[1:]),
        ("{{ secret('T')[::-1] }}", TOKEN[::-1]),
        ("{{ secret('T') | reverse }}", TOKEN[::-1]),
        ("{{ secret('T') | list | join }}", TOKEN),
        ("{{ secret('T').split('/')[1] }}", TOKEN.split("/")[1]),
        ("{{ '%s!' % secret('T')[2:] }}", TOKEN[2:] + "!"),
        ("{{ (secret('T') ~ 'x') | upper }}", TOKEN.upper() + "X"),
        ("{% for c in secret('T') %}{{ c | upper }}{% endfor %}", TOKEN.upper()),
        ("pre {{ secret('T') | upper | b64encode | reverse }}", None),
    ],
)
def test_values_derived_from_a_secret_are_secret(template: str, derived: str | None) -> None:
    e = engine(T=TOKEN)
    value = e.render(template, {})
    text = str.__str__(value) if isinstance(value, str) else value
    if derived is not None:
        assert text.removeprefix("pre ") == derived
    # Redacted as a value of its own, anywhere it appears later in the run:
    plain = "log: " + str.__str__(text).removeprefix("pre ") + " end"
    assert e.secrets.redact(plain) == f"log: {REDACTED} end", template
    assert derived is None or derived in e.secrets


def test_a_list_of_secret_characters_is_hidden_though_each_is_too_short_to_register() -> None:
    e = engine(T=TOKEN)
    chars = e.render("{{ secret('T') | list }}", {})
    assert [str.__str__(c) for c in chars] == list(TOKEN)
    assert all(isinstance(c, SecretStr) for c in chars)
    assert e.secrets.redact({"chars": chars}) == {"chars": [REDACTED] * len(TOKEN)}
    # ...but single letters are not masked everywhere: that would erase every "t".
    assert e.secrets.redact("the tokens") == "the tokens"


def test_rendering_without_secrets_returns_plain_values() -> None:
    e = engine()
    assert type(e.render("{{ 'abc' | upper }}", {})) is str
    assert not e.secrets


def test_a_multiline_secret_is_redacted_line_by_line_and_in_encoded_forms() -> None:
    r = SecretRegistry()
    r.add(PEM)
    lines = [ln for ln in PEM.splitlines() if ln]
    for line in lines:
        assert r.redact_str(f"> {line} <") == f"> {REDACTED} <"
    encoded = [
        PEM.rstrip("\n"),
        quote(PEM, safe=""),
        quote(PEM),
        quote_plus(PEM),
        base64.b64encode(PEM.encode()).decode(),
        base64.b64encode(PEM.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(PEM.encode()).decode(),
        repr(PEM.encode()),
        json.dumps(PEM),
    ]
    for form in encoded:
        assert PEM.splitlines()[1] not in r.redact_str(form), form
        assert "MIIBOg" not in r.redact_str(form), form
    # bytes values are redacted too
    assert r.redact({"out": PEM.encode()}) == {"out": REDACTED.encode()}
    crlf = PEM.replace("\n", "\r\n").encode()  # not the value itself: redacted line by line
    assert r.redact({"out": b"> " + crlf}) == {
        "out": f"> {REDACTED}\r\n{REDACTED}\r\n{REDACTED}\r\n{REDACTED}\r\n".encode()
    }


def test_short_lines_of_a_multiline_secret_are_not_registered() -> None:
    r = SecretRegistry()
    r.add("abc\nlong-enough-line\n")
    assert r.redact_str("abc") == "abc"  # shorter than MIN_LINE: structure, not secret
    assert r.redact_str("x long-enough-line") == f"x {REDACTED}"


def test_dictionary_keys_are_redacted() -> None:
    r = SecretRegistry()
    r.add(TOKEN)
    assert r.redact({TOKEN: {"nested " + TOKEN: [TOKEN]}}) == {
        REDACTED: {f"nested {REDACTED}": [REDACTED]}
    }


def test_excerpts_are_redacted_before_they_are_cut() -> None:
    r = SecretRegistry()
    r.add(TOKEN)
    # the cut falls inside the token: what is left of it (>= 4 chars) is masked
    text = "x" * 290 + TOKEN + " trailing"
    out = r.redact_excerpt(text, 300, "…")
    assert TOKEN[:4] not in out and out == "x" * 290 + REDACTED + "…"
    # a partial occurrence at the cut edge of an already-cut text
    assert r.mask_cut_edge("error near 'tok-Abc/9") == f"error near '{REDACTED}"
    assert r.mask_cut_edge("ends with tok") == "ends with tok"  # under 4 characters
    # a cut inside the marker keeps the marker whole
    assert r.redact_excerpt("y" * 295 + TOKEN, 300, "") == "y" * 295 + REDACTED


def test_redaction_stays_fast_with_many_secret_forms() -> None:
    import time

    r = SecretRegistry()
    for i in range(200):
        r.add(f"secret-value-{i:04d}-{'z' * 10}")
    line = "2026-11-30 INFO worker 17 processed batch 42 in 3 ms status=ok " * 2
    r.redact_str(line)
    start = time.perf_counter()
    for _ in range(2000):
        r.redact_str(line)
    per_call = (time.perf_counter() - start) / 2000
    assert per_call < 200e-6, f"{per_call * 1e6:.0f} µs per line"


async def test_a_secret_learned_late_is_redacted_in_the_report(tmp_path) -> None:
    # `secret(name)` with a computed name cannot be registered at load: the token is
    # learned after `early` registered it in clear; the report is redacted at the end.
    text = """
schemaVersion: "1.0.0"
name: late
vars: { which: GXO_LATE_TOKEN }
workloads:
  - name: early
    process: { module: control:identity, params: { seen: "{{ early_value }}" } }
  - name: late
    depends_on: [early]
    process: { module: control:identity, params: { t: "{{ secret(which) | length }}" } }
"""
    registry = SecretRegistry(provider={"GXO_LATE_TOKEN": TOKEN}.get)
    result = await run_playbook_text(
        text,
        secrets=registry,
        workspace=tmp_path,
        extra_vars={"early_value": f"printed {TOKEN}"},
    )
    assert result.status == "Completed"
    report = json.dumps(build_report(result))
    assert TOKEN not in report
    assert build_report(result)["workloads"]["early"]["summary"] == {"seen": f"printed {REDACTED}"}
    # -v progress prints the summaries at the end: with the final registry too
    import io

    from rich.console import Console

    from gxo.console import print_summary

    out = io.StringIO()
    print_summary(Console(file=out, width=200), result, verbose=True)
    assert TOKEN not in out.getvalue() and f"printed {REDACTED}" in out.getvalue()


def test_a_summary_cut_for_progress_output_does_not_cut_a_secret() -> None:
    from gxo.console import _short

    r = SecretRegistry()
    r.add(TOKEN)
    summary = {"padding": "p" * 474, "v": TOKEN}  # the cut at 500 falls in the token
    shown = _short(summary, secrets=r)
    assert TOKEN[:4] not in shown and shown.endswith(REDACTED + "…")


async def test_secrets_named_in_the_playbook_are_registered_before_anything_runs(tmp_path) -> None:
    text = """
schemaVersion: "1.0.0"
name: early
workloads:
  - name: cat_tokfile
    process: { module: exec, params: { command: cat, args: [tokfile] } }
  - name: missing_secret
    process: { module: control:identity, params: { x: "{{ secret('GXO_NOT_SET_ANYWHERE') }}" } }
  - name: use
    depends_on: [cat_tokfile]
    process: { module: control:identity, params: { h: "Bearer {{ secret('GXO_TOK') }}" } }
"""
    (tmp_path / "tokfile").write_text(TOKEN + "\n")
    seen: list[Any] = []
    bus = EventBus()
    bus.add_listener(lambda event: seen.append(event.data))
    registry = SecretRegistry(provider={"GXO_TOK": TOKEN}.get)
    result = await run_playbook_text(text, secrets=registry, workspace=tmp_path, bus=bus)
    states = result.states
    # the workload printing the token ran before secret('GXO_TOK') was evaluated
    assert states["cat_tokfile"].summary["stdout"] == REDACTED
    assert all(TOKEN not in line for _, _, line in states["cat_tokfile"].logs)
    assert TOKEN not in json.dumps(seen, default=str)
    # a missing secret still fails only the workload that uses it, when it renders
    assert states["missing_secret"].status == "Failed"
    assert "secret 'GXO_NOT_SET_ANYWHERE' is not set" in states["missing_secret"].error
    assert states["use"].status == "Completed"


async def test_a_validation_error_does_not_echo_a_secret(tmp_path) -> None:
    text = """
schemaVersion: "1.0.0"
name: bad-method
workloads:
  - name: call
    process:
      module: http:request
      params: { url: "http://127.0.0.1:9/", method: "{{ secret('M') }}" }
"""
    registry = SecretRegistry(provider={"M": "supersecretverb"}.get)
    result = await run_playbook_text(text, secrets=registry, workspace=tmp_path)
    error = result.states["call"].error
    assert "param 'method'" in error and f"(got {REDACTED})" in error
    assert "supersecret" not in error.lower()


async def test_assertions_compare_true_values_and_show_redacted_ones(tmp_path) -> None:
    text = """
schemaVersion: "1.0.0"
name: assert-secrets
workloads:
  - name: echo
    process: { module: exec, params: { command: echo, args: ["Bearer {{ secret('T') }}"] } }
    register: echoed
  - name: holds
    process:
      module: test:assert
      params:
        assertions:
          - { actual: "{{ echoed.stdout }}", equal_to: "Bearer {{ secret('T') }}" }
          - { actual: "{{ echoed.stdout }}", not_equal_to: "Bearer [REDACTED]" }
  - name: differs
    ignore_errors: true
    process:
      module: test:assert
      params:
        assertions:
          - { actual: "{{ echoed.stdout }}", equal_to: "Bearer {{ secret('T') | replace('x', 'y') }}" }
          - { actual: "{{ echoed.stdout }}", equal_to: "Bearer! {{ secret('T') }}" }
"""
    registry = SecretRegistry(provider={"T": TOKEN}.get)
    result = await run_playbook_text(text, secrets=registry, workspace=tmp_path)
    assert result.states["holds"].status == "Completed", result.states["holds"].error
    failed = result.states["differs"]
    assert failed.status == "Failed"
    out = json.dumps(build_report(result))
    assert TOKEN not in out and TOKEN.replace("x", "y") not in out
    failures = failed.summary["failures"]
    assert failures[0]["diff"] is None  # both look like "Bearer [REDACTED]": no diff to show
    assert "differ inside a secret" in failures[0]["reason"]
    assert failures[1]["diff"] is not None
    assert not any(line.startswith("?") for line in failures[1]["diff"].splitlines())


async def test_a_long_output_line_cut_for_the_log_does_not_cut_a_secret(tmp_path) -> None:
    from gxo.modules.system.exec import LOG_LINE_CAP

    text = """
schemaVersion: "1.0.0"
name: long-line
workloads:
  - name: long
    process:
      module: exec
      params:
        command: python3
        args: ["-c", "import os; print('x' * (int(os.environ['CUT']) - 6) + os.environ['T'])"]
        environment: { T: "{{ secret('T') }}", CUT: "CAP" }
""".replace("CAP", str(LOG_LINE_CAP))
    registry = SecretRegistry(provider={"T": TOKEN}.get)
    result = await run_playbook_text(text, secrets=registry, workspace=tmp_path)
    state = result.states["long"]
    assert state.status == "Completed", state.error
    [(_, _, line)] = [entry for entry in state.logs if entry[1] == "stdout"]
    assert "more bytes]" in line  # the log line was cut inside the token
    assert TOKEN[:4] not in line and REDACTED in line


def test_templates_of_a_run_without_secrets_do_not_pay_for_taint_propagation() -> None:
    e = engine()
    source = "x {{ 'plain text' | upper }}"
    assert e.render(source, {}) == "x PLAIN TEXT"
    assert e.compile(source)._tainting is None  # the plain sandbox rendered it
    e.secrets.add("now-a-secret")
    assert e.render(source, {}) == "x PLAIN TEXT"
    assert e.compile(source)._tainting is not None


def test_derived_registration_is_bounded() -> None:
    from gxo.template.secrets import MAX_DERIVED

    r = SecretRegistry()
    r.add(TOKEN)
    assert not r.add_derived("abc")  # too short to register (it keeps its taint mark)
    for i in range(MAX_DERIVED + 10):
        r.add_derived(f"{TOKEN}-{i}")
    assert len(r._values) == MAX_DERIVED + 1
