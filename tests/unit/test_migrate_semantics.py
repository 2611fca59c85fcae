"""`gxo migrate` and the legacy shim warn where 1.0.0 behaves differently from v0.1.2a,
and rewrite `{{ secret "X" }}` mechanically."""

from __future__ import annotations

from gxo.config.legacy import rewrite_go_template
from gxo.config.loader import load_playbook
from gxo.config.migrate import migrate_text

LEGACY = """\
schemaVersion: v1.0.0
name: old
tasks:
  - name: fetch
    type: exec
    params: { command: "{{ secret \\"API_TOKEN\\" }}" }
    register: fetched
    ignore_errors: true
  - name: use
    type: control:identity
    params: { out: "{{ .fetched.stdout }}" }
    when: "{{ .env == 'prod' }}"
  - name: lonely
    type: exec
    params: { command: "true" }
    ignore_errors: true
  - name: by_status
    type: exec
    params: { command: "true" }
    ignore_errors: true
  - name: reads_status
    type: control:identity
    params: { s: "{{ _gxo.tasks.by_status.status }}" }
"""


def test_migrate_warns_where_semantics_changed_and_rewrites_secret() -> None:
    text, warnings = migrate_text(LEGACY, "old.yaml")
    assert "{{ secret('API_TOKEN') }}" in text
    assert len(warnings) == 3
    assert warnings[0].startswith(
        "old.yaml:8: ignore_errors: when this workload fails, its dependents now run"
    )
    assert "_gxo.workloads.fetch.status == 'Completed'" in warnings[0]
    assert warnings[1].startswith("old.yaml:12: 'when' that fails to render")
    assert "now fails the workload; v0.1.2a skipped it" in warnings[1]
    assert warnings[2].startswith("old.yaml:20: ignore_errors")  # read via _gxo.tasks.by_status
    # 'lonely' has no dependents: nothing changes for it, no warning


def test_the_shim_gives_the_same_warnings() -> None:
    loaded = load_playbook(text=LEGACY, name="old.yaml", extra_names={"env"})
    assert loaded.legacy
    _, expected = migrate_text(LEGACY, "old.yaml")
    assert loaded.warnings[1:] == expected
    params = loaded.playbook.workloads[0].process.params
    assert params == {"command": "{{ secret('API_TOKEN') }}"}


def test_secret_call_forms() -> None:
    assert rewrite_go_template('{{ secret "A_B" }}') == ("{{ secret('A_B') }}", [])
    assert rewrite_go_template("{{- secret `K` -}}") == ("{{- secret('K') -}}", [])
    # not mechanical: kept and reported
    assert rewrite_go_template("{{ secret .name }}")[1] == ["{{ secret .name }}"]
    assert rewrite_go_template('{{ secret "it\'s" }}')[1] == ['{{ secret "it\'s" }}']


def test_stream_consumers_are_dependents_and_unnamed_tasks_are_named() -> None:
    text = (
        "schemaVersion: v1.0.0\nname: s\ntasks:\n"
        "  - name: gen\n    type: generate:from_list\n    params: { items: [{a: 1}] }\n"
        "    ignore_errors: true\n"
        "  - name: sink\n    type: passthrough\n    stream_inputs: [gen]\n"
        "  - type: exec\n    params: { command: 'true' }\n    ignore_errors: true\n"
    )
    _, warnings = migrate_text(text, "s.yaml")
    assert [w.split(": ", 2)[1] for w in warnings if "ignore_errors" in w] == ["ignore_errors"]
    assert warnings[0].startswith("s.yaml:7: ignore_errors")
    assert "_gxo.workloads.gen.status" in warnings[0]
