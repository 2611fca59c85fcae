"""A generator of secret leaks: random secrets through random chains of filters.

Random secrets (multi-line PEM-like, with a trailing newline, with characters
that need percent-encoding) are passed through random chains of the filters and
operations that derive values inside templates, in a real playbook run: a
workload registers the derived value, a program prints it and its encoded forms
(base64, percent-encoded, repr of bytes), a failure message carries it. No
output — report JSON, events, logs, registered state, the -v summary lines —
may contain any of those forms.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any
from urllib.parse import quote, quote_plus

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from gxo.console import print_summary
from gxo.engine.events import EventBus
from gxo.engine.report import build_report
from gxo.modules.testkit import run_playbook_text
from gxo.state.store import MemoryStore
from gxo.template import TemplateEngine
from gxo.template.secrets import MIN_DERIVED, MIN_LINE, SecretRegistry

OPS = {
    "upper": "({} | upper)",
    "lower": "({} | lower)",
    "title": "({} | title)",
    "capitalize": "({} | capitalize)",
    "b64encode": "({} | b64encode)",
    "urlencode": "({} | urlencode)",
    "escape": "({} | escape)",
    "replace": "({} | replace('a', 'Z'))",
    "trim": "({} | trim)",
    "tail": "{}[1:]",
    "reverse_slice": "{}[::-1]",
    "reverse": "({} | reverse)",
    "list_join": "({} | list | join)",
    "concat_upper": "(('k=' ~ {}) | upper)",
}
PEM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
URL_CHARS = PEM_CHARS + " &%=?#:;@-_.~!$'()*,\"<>"

word = st.text(alphabet=URL_CHARS, min_size=10, max_size=24).filter(lambda s: s.strip() == s)
pem = st.lists(st.text(alphabet=PEM_CHARS, min_size=16, max_size=40), min_size=2, max_size=4).map(
    lambda lines: "-----BEGIN TEST KEY-----\n" + "\n".join(lines) + "\n-----END TEST KEY-----\n"
)
secrets = st.one_of(word, word.map(lambda s: s + "\n"), pem)
chains = st.lists(st.sampled_from(sorted(OPS)), min_size=1, max_size=3)

PLAYBOOK = """
schemaVersion: "1.0.0"
name: fuzz-secrets
workloads:
  - name: derive
    process: {{ module: control:identity, params: {{ v: "{{{{ {expr} }}}}" }} }}
    register: derived
  - name: print
    process:
      module: exec
      params:
        command: python3
        args:
          - -c
          - |
            import base64, os, urllib.parse
            v = os.environ["V"]
            print(v)
            print(base64.b64encode(v.encode()).decode())
            print(urllib.parse.quote(v, safe=""), urllib.parse.quote_plus(v))
            print(repr(v.encode()))
        environment: {{ V: "{{{{ {expr} }}}}" }}
  - name: loop
    process: {{ module: control:identity, params: {{ v: "{{% for c in {expr} %}}{{{{ c }}}}{{% endfor %}}" }} }}
  - name: fail
    ignore_errors: true
    process:
      module: control:assert
      params: {{ condition: "false", fail_message: "bad {{{{ {expr} }}}}" }}
"""


def _expression(chain: list[str]) -> str:
    expr = "secret('GXO_FUZZ')"
    for op in chain:
        expr = OPS[op].format(expr)
    return expr.replace('"', '\\"')


def _forms(value: str) -> set[str]:
    out = {value, value.rstrip("\n"), value.strip()}
    for v in list(out):
        raw = v.encode()
        out |= {
            quote(v, safe=""),
            quote_plus(v),
            base64.b64encode(raw).decode(),
            repr(raw)[2:-1],
            json.dumps(v)[1:-1],
        }
    if "\n" in value.strip():
        out |= {ln.strip() for ln in value.splitlines() if len(ln.strip()) >= MIN_LINE}
    return {f for f in out if len(f) >= MIN_DERIVED and not f.isspace()}


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples in CI on every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(secret=secrets, chain=chains)
async def test_no_output_contains_any_form_of_a_derived_secret(
    secret: str, chain: list[str], tmp_path_factory: Any
) -> None:
    expr = _expression(chain)
    derived = TemplateEngine(SecretRegistry(provider={"GXO_FUZZ": secret}.get)).render(
        "{{ " + expr.replace('\\"', '"') + " }}", {}
    )
    derived = str.__str__(derived)
    events: list[Any] = []
    bus = EventBus()
    bus.add_listener(lambda event: events.append(event.data))
    registry = SecretRegistry(provider={"GXO_FUZZ": secret}.get)
    store = MemoryStore()
    result = await run_playbook_text(
        PLAYBOOK.format(expr=expr),
        secrets=registry,
        bus=bus,
        store=store,
        workspace=tmp_path_factory.mktemp("fuzz"),
    )
    assert result.states["print"].status == "Completed", result.states["print"].error
    progress = io.StringIO()
    print_summary(Console(file=progress, width=300), result, verbose=True)
    outputs = {
        "report": json.dumps(build_report(result), ensure_ascii=False),
        "events": json.dumps(events, default=str, ensure_ascii=False),
        "logs": json.dumps([list(s.logs) for s in result.states.values()], ensure_ascii=False),
        "state": json.dumps({k: store.get(k) for k in list(store.keys())}, default=str),
        "progress": progress.getvalue(),
    }
    for form in _forms(derived) | _forms(secret):
        for where, text in outputs.items():
            assert form not in text, f"{form!r} of {chain} leaked in {where}"
