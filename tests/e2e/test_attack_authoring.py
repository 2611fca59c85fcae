"""Regression tests for what attacking the authoring features (issue 17) broke:
status functions named without ``()``, status functions in ``retry.until``, vars that
read undefined names or register keys, vars reading ``_gxo``, and a password in an
``http:request`` URL.

In-process through the CLI (typer's runner), as tests/e2e/test_select_cli.py does.
"""

from __future__ import annotations

import contextlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gxo.cli import app


def write(tmp_path: Path, text: str, name: str = "pb.gxo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def gxo(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def report_of(stdout: str) -> dict[str, Any]:
    return json.loads(stdout[stdout.index("{") :])


# -- when: failure (no parentheses) ------------------------------------------------


UNCALLED = """
schemaVersion: "1.0.0"
name: uncalled
workloads:
  - name: deploy
    process: {module: exec, params: {command: "true"}}
  - name: page
    depends_on: [deploy]
    when: WHEN
    process: {module: control:identity, params: {v: 1}}
"""


@pytest.mark.parametrize("when", ["failure", "always", "not cancelled", "'{{ success }}'"])
def test_a_status_function_named_without_parentheses_is_a_load_error(
    tmp_path: Path, when: str
) -> None:
    # `when: failure` read the function object, which is truthy: the pager ran after
    # a SUCCESSFUL deploy, and was skipped after a failed one ("dependency failed").
    path = write(tmp_path, UNCALLED.replace("WHEN", when))
    for command in ("validate", "run"):
        code, _, err = gxo(command, str(path))
        assert code == 2, (command, err)
        name = next(n for n in ("failure", "always", "cancelled", "success") if n in when)
        assert f"pb.gxo.yaml:8:5: workload 'page': when: '{name}' is a status function" in err
        assert f"call it, {name}()" in err


def test_a_var_or_register_key_named_like_a_status_function_is_a_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: names
        vars: {always: true}
        workloads:
          - name: a
            when: always
            process: {module: control:identity, params: {v: 1}}
          - name: b
            process: {module: control:identity, params: {ok: false}}
            register: success
          - name: d
            when: success.ok
            process: {module: control:identity, params: {v: 3}}
          - name: c
            depends_on: [a]
            when: "always() or failure()"
            process: {module: control:identity, params: {v: 2}}
        """,
    )
    code, out, err = gxo("run", str(path), "-q", "--report", "-")
    assert code == 0, err
    report = report_of(out)
    assert report["workloads"]["a"]["status"] == "Completed"
    assert report["workloads"]["d"]["status"] == "Skipped"
    assert report["workloads"]["c"]["status"] == "Completed"


def test_a_status_function_in_retry_until_is_a_load_error(tmp_path: Path) -> None:
    # It failed at run time (exit 1) though docs/conditions.md promises a FILE:LINE error.
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: until
        workloads:
          - name: poll
            process: {module: control:identity, params: {v: 1}}
            retry: {attempts: 2, delay: 1ms, until: "failure() or result.v == 1"}
        """,
    )
    code, _, err = gxo("run", str(path))
    assert code == 2
    assert (
        "pb.gxo.yaml:6:38: workload 'poll': failure() is a status function: "
        "it can only be used in 'when'"
    ) in err
    path.write_text(path.read_text().replace("failure() or ", "success and "))
    code, _, err = gxo("validate", str(path))
    assert code == 2
    assert "retry.until: 'success' is a status function: call it, success()" in err


# -- vars ---------------------------------------------------------------------------


def test_vars_reading_an_undefined_name_are_a_load_error_with_the_line(tmp_path: Path) -> None:
    # validate said "ok" and run failed (exit 1) with a warning naming no file or line.
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: v
        vars:
          region: eu
          url: "https://{{ regoin }}.example.com"
          count: "{{ fetched.rows | length }}"
        workloads:
          - name: fetch
            process: {module: control:identity, params: {rows: [1]}}
            register: fetched
        """,
    )
    for command in ("validate", "run"):
        code, _, err = gxo(command, str(path))
        assert code == 2, err
        assert "pb.gxo.yaml:5:3: var 'url': 'regoin' is not defined" in err
        assert (
            "pb.gxo.yaml:6:3: var 'count': 'fetched' is not defined: it is the register "
            "key of workload 'fetch', and vars render before any workload runs"
        ) in err
    # An -e override defines the name.
    path.write_text(path.read_text().replace('  count: "{{ fetched.rows | length }}"\n', ""))
    code, _, err = gxo("run", str(path), "-e", "regoin=us", "-q", "--report", "-")
    assert code == 0, err


def test_an_imported_var_reading_an_undefined_name_points_at_the_import(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    write(
        tmp_path / "lib",
        """
        vars: {size: 1}
        workloads:
          - name: x
            process: {module: control:identity, params: {v: "{{ size }}"}}
        """,
        "lib.gxo.yaml",
    )
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: site
        imports:
          - {path: lib/lib.gxo.yaml, prefix: db_, vars: {size: "{{ nope }}"}}
        workloads:
          - name: a
            process: {module: control:identity, params: {v: 1}}
        """,
    )
    code, _, err = gxo("validate", str(path))
    assert code == 2
    assert "pb.gxo.yaml:4:" in err and "var 'db_size': 'nope' is not defined" in err


def test_vars_see_gxo_and_a_vars_failure_names_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GXO_ATTACK_UNSET", raising=False)
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: gxovars
        vars:
          data: "{{ _gxo.playbook_dir }}/data"
          who: "{{ _gxo.playbook.name }}"
        workloads:
          - name: a
            process: {module: control:identity, params: {data: "{{ data }}", who: "{{ who }}"}}
        """,
    )
    code, out, err = gxo("run", str(path), "-q", "--report", "-")
    assert code == 0, err
    summary = report_of(out)["workloads"]["a"]["summary"]
    assert summary == {"data": f"{tmp_path}/data", "who": "gxovars"}
    # A var that cannot render at run time (an unset secret): the line of the var.
    path.write_text(
        path.read_text().replace(
            '"{{ _gxo.playbook.name }}"', "\"{{ secret('GXO_ATTACK_UNSET') }}\""
        )
    )
    code, _, err = gxo("run", str(path), "-q")
    assert code == 1
    assert "pb.gxo.yaml:5:3: param 'vars.who': secret '" in err
    assert "is not set (looked for environment variable GXO_ATTACK_UNSET)" in err


# -- http:request: a password in the URL ----------------------------------------------


def test_a_password_in_an_http_url_is_masked_in_errors_check_mode_and_reports(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: urlpw
        workloads:
          - name: post
            process:
              module: http:request
              params: {url: "http://deploy:Url%40Pass99@127.0.0.1:9/hook", method: POST, timeout: 2s}
          - name: get
            process:
              module: http:request
              params: {url: "http://deploy:Url%40Pass99@127.0.0.1:9/status", timeout: 2s}
        """,
    )
    for extra in ((), ("--check",)):
        code, out, err = gxo("run", str(path), "-v", *extra, "--report", str(tmp_path / "r.json"))
        assert code == 1, err
        text = out + err + (tmp_path / "r.json").read_text()
        assert "Url%40Pass99" not in text and "Url@Pass99" not in text, text
        assert "http://deploy:[REDACTED]@127.0.0.1:9/status" in text
        if extra:
            report = json.loads((tmp_path / "r.json").read_text())
            request = report["workloads"]["post"]["summary"]["request"]
            assert request["url"] == "http://deploy:[REDACTED]@127.0.0.1:9/hook"


# -- YAML: a duplicate key ---------------------------------------------------------------


def test_a_duplicate_key_error_does_not_quote_the_values(tmp_path: Path) -> None:
    # ruamel's message quoted both whole values: a workload's params, credentials included.
    (tmp_path / "lib").mkdir()
    write(
        tmp_path / "lib",
        """
        workloads:
          - name: x
            process: {module: control:identity, params: {token: LitDupToken1}}
            process: {module: control:identity, params: {token: LitDupToken2}}
        """,
        "lib.gxo.yaml",
    )
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: dup
        imports: [{path: lib/lib.gxo.yaml, prefix: l_}]
        workloads: []
        """,
    )
    code, _, err = gxo("validate", str(path))
    assert code == 2
    assert "LitDupToken" not in err
    assert err.strip().endswith(
        'lib/lib.gxo.yaml:4:5: YAML syntax error: found duplicate key "process" '
        "(a key may appear once in a mapping)"
    )


# -- a condition that is text around {{ }} ---------------------------------------------


def test_a_condition_of_text_around_braces_is_a_load_error(tmp_path: Path) -> None:
    # "{{ env }} == 'prod'" rendered to "dev == 'prod'": a non-empty string, so true —
    # the prod-only workload ran in dev, and the until stopped polling at once.
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: mixed
        vars: {env: dev, ok: true}
        workloads:
          - name: prod_only
            when: "{{ env }} == 'prod'"
            process: {module: control:identity, params: {v: 1}}
          - name: poll
            process: {module: control:identity, params: {v: 1}}
            retry: {attempts: 3, delay: 1ms, until: "{{ result.v }} == 2"}
          - name: fine
            when: "  {{ env == 'dev' }}  "
            process: {module: control:identity, params: {v: 1}}
          - name: block
            when: "{% if ok %}yes{% endif %}"
            process: {module: control:identity, params: {v: 1}}
        """,
    )
    code, _, err = gxo("validate", str(path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].endswith(
        "pb.gxo.yaml:6:5: workload 'prod_only': when \"{{ env }} == 'prod'\" is text around "
        "{{ }}: it renders to a non-empty string, which is always true; write the whole "
        "condition as one expression: bare, without braces, or inside one {{ }}"
    )
    assert "workload 'poll': retry.until '{{ result.v }} == 2' is text around {{ }}" in lines[1]


# -- selection: an empty value -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", ""], "--only: empty value: give a workload name"),
        (["--only", " , "], "--only: empty value: give a workload name"),
        (["--skip", ""], "--skip: empty value: give a workload name"),
        (["--from", " "], "--from: empty value: give a workload name"),
        (["--tags", ","], "--tags: empty value: give a tag"),
        (["--skip-tags", ""], "--skip-tags: empty value: give a tag"),
    ],
)
def test_an_empty_selection_value_is_a_usage_error(
    tmp_path: Path, args: list[str], message: str
) -> None:
    # `gxo run --only "$SERVICES"` with SERVICES empty ran the whole playbook.
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: sel
        workloads:
          - name: a
            tags: [x]
            process: {module: control:identity, params: {v: 1}}
        """,
    )
    code, out, err = gxo("run", str(path), *args)
    assert code == 2
    assert err.strip() == f"error: {message}"
    assert "Completed" not in out + err


# -- --check and retry.until ---------------------------------------------------------------


def test_check_mode_does_not_poll_a_prediction(tmp_path: Path) -> None:
    # A predicted workload was retried `attempts` times with its delay (a prediction
    # never changes), and an until reading the real response failed on the prediction.
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: poll
        workloads:
          - name: write
            process: {module: filesystem:write, params: {path: out.txt, content: x}}
            retry: {attempts: 20, delay: 1s, until: "result.bytes_written == 99"}
          - name: post
            process: {module: http:request, params: {url: "http://127.0.0.1:9/x", method: POST}}
            retry: {attempts: 20, delay: 1s, until: "result.json_body.state == 'ready'"}
          - name: read_only
            process: {module: control:identity, params: {v: 1}}
            retry: {attempts: 2, delay: 1ms, until: "result.v == 2"}
        """,
    )
    code, out, _ = gxo("run", str(path), "--check", "-q", "--report", "-")
    report = report_of(out)["workloads"]
    assert code == 1
    for name in ("write", "post"):
        assert report[name]["status"] == "Completed", report[name]
        assert report[name]["attempts"] == 1
    assert not (tmp_path / "out.txt").exists()
    # A read-only module runs for real under --check: its until is polled as usual.
    assert report["read_only"]["status"] == "Failed"
    assert report["read_only"]["attempts"] == 2


def test_an_until_that_raises_names_the_until_line(tmp_path: Path) -> None:
    # It named the line of process.params (the nearest position of "params.retry.until").
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: raises
        workloads:
          - name: poll
            process: {module: control:identity, params: {v: 1}}
            retry: {attempts: 3, delay: 1ms, until: "result.v > (1 / 0)"}
        """,
    )
    code, _, err = gxo("run", str(path), "-q")
    assert code == 1
    assert "pb.gxo.yaml:6:38: param 'retry.until': ZeroDivisionError: division by zero" in err


def test_check_mode_leaves_no_new_sqlite_file(tmp_path: Path) -> None:
    # Connecting to predict the statements created an empty app.db: a check changed the disk.
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: sqlite
        workloads:
          - name: create
            process:
              module: database:query
              params: {url: "sqlite:///app.db", query: "CREATE TABLE t (x int)"}
          - name: existing
            process:
              module: database:query
              params: {url: "sqlite:///old.db", query: "INSERT INTO t VALUES (1)"}
        """,
    )
    import sqlite3

    with contextlib.closing(sqlite3.connect(tmp_path / "old.db")) as db:
        db.execute("CREATE TABLE t (x int)")
        db.commit()
    before = (tmp_path / "old.db").read_bytes()
    code, out, err = gxo("run", str(path), "--check", "-q", "--report", "-")
    assert code == 0, err
    report = report_of(out)["workloads"]
    assert report["create"]["summary"]["changed"] is True
    assert report["existing"]["summary"]["changed"] is True
    assert not (tmp_path / "app.db").exists()
    assert (tmp_path / "old.db").read_bytes() == before
    # The real run creates it.
    code, _, err = gxo("run", str(path), "-q")
    assert code == 0, err
    assert (tmp_path / "app.db").stat().st_size > 0


def test_check_mode_request_masks_credential_fields_of_the_body(tmp_path: Path) -> None:
    # The predicted request showed {"password": "..."} in the summary and the report,
    # where a real run never shows the body it sends.
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: body
        workloads:
          - name: login
            process:
              module: http:request
              params:
                url: "http://127.0.0.1:9/login"
                method: POST
                json: {user: ops, password: LitBodyPw1, nested: [{api_token: LitBodyTok2, n: 1}]}
          - name: form
            process:
              module: http:request
              params:
                url: "http://127.0.0.1:9/login"
                method: PUT
                form: {client_secret: LitBodySecret3, grant_type: client_credentials}
        """,
    )
    code, out, err = gxo("run", str(path), "--check", "-v", "--report", str(tmp_path / "r.json"))
    assert code == 0, err
    assert "LitBody" not in out + err + (tmp_path / "r.json").read_text()
    report = json.loads((tmp_path / "r.json").read_text())["workloads"]
    assert report["login"]["summary"]["request"]["json"] == {
        "user": "ops",
        "password": "***",
        "nested": [{"api_token": "***", "n": 1}],
    }
    assert report["form"]["summary"]["request"]["form"] == {
        "client_secret": "***",
        "grant_type": "client_credentials",
    }


# -- reserved names --------------------------------------------------------------------------


def test_a_var_or_register_key_hiding_secret_now_or_gxo_is_a_load_error(tmp_path: Path) -> None:
    # `vars: {secret: ...}` made every secret('X') fail with "'int' object is not
    # callable"; an import's var `o` under the prefix `_gx` became `_gxo`.
    (tmp_path / "lib").mkdir()
    write(
        tmp_path / "lib",
        """
        vars: {o: 1, ok: 2}
        workloads:
          - name: x
            process: {module: control:identity, params: {v: "{{ o + ok }}"}}
        """,
        "lib.gxo.yaml",
    )
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: reserved
        vars: {secret: 1}
        imports: [{path: lib/lib.gxo.yaml, prefix: _gx}]
        workloads:
          - name: a
            process: {module: control:identity, params: {v: 1}}
            register: now
        """,
    )
    code, _, err = gxo("validate", str(path))
    assert code == 2
    assert (
        "pb.gxo.yaml:3:8: variable name 'secret' is reserved: it would hide the secret() function"
        in err
    )
    assert (
        "lib.gxo.yaml:1:8: variable name '_gxo' is reserved: it would hide the run's _gxo names"
        in err
    )
    assert "workload 'a': register key 'now' is reserved: it would hide the now() function" in err


# -- Ansible / GitHub Actions spellings ---------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('if: "always()"', "unknown key 'if' (GXO's name for it: 'when')"),
        ("needs: [b]", "unknown key 'needs' (GXO's name for it: 'depends_on')"),
        ('until: "result.v == 1"', "unknown key 'until' (GXO's name for it: 'retry.until')"),
        ("retries: 3", "unknown key 'retries' (GXO's name for it: 'retry.attempts')"),
        ("with_items: [1, 2]", "unknown key 'with_items' (GXO's name for it: 'loop')"),
        (
            "continue-on-error: true",
            "unknown key 'continue-on-error' (GXO's name for it: 'ignore_errors')",
        ),
        (
            'when: ["v == 1", "w == 2"]',
            "when: expected a string or a boolean, got a list "
            "(for several conditions, join them with 'and')",
        ),
    ],
)
def test_foreign_spellings_name_the_gxo_key(tmp_path: Path, line: str, message: str) -> None:
    path = write(
        tmp_path,
        f"""
        schemaVersion: "1.0.0"
        name: foreign
        workloads:
          - name: a
            {line}
            process: {{module: control:identity, params: {{v: 1}}}}
          - name: b
            process: {{module: control:identity, params: {{v: 1}}}}
        """,
    )
    code, _, err = gxo("validate", str(path))
    assert code == 2
    assert f"pb.gxo.yaml:5:5: workload 'a': {message}" in err, err


def test_a_loop_that_renders_to_no_list_names_the_loop_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: loops
        vars: {s: abc, big: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
        workloads:
          - name: a
            loop: "{{ s }}"
            process: {module: control:identity, params: {v: "{{ item }}"}}
          - name: b
            loop: "{{ big }}"
            process: {module: control:identity, params: {v: "{{ item }}"}}
        """,
    )
    code, _, err = gxo("run", str(path), "-q")
    assert code == 1
    assert "pb.gxo.yaml:6:5: param 'loop': loop must be a list or a mapping, got str: 'abc'" in err
    assert "pb.gxo.yaml:9:5: param 'loop': loop must be a list or a mapping, got str: 'AAA" in err
    assert "A" * 90 not in err


def test_selecting_an_imported_workload_by_its_own_name_suggests_the_prefixed_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "lib").mkdir()
    write(
        tmp_path / "lib",
        """
        workloads:
          - name: migrate
            process: {module: control:identity, params: {v: 1}}
        """,
        "lib.gxo.yaml",
    )
    workloads = "".join(
        f"\n  - name: w{i}\n    process: {{module: control:identity, params: {{v: {i}}}}}"
        for i in range(13)
    )
    path = tmp_path / "pb.gxo.yaml"
    path.write_text(
        'schemaVersion: "1.0.0"\nname: imp\nimports: [{path: lib/lib.gxo.yaml, prefix: db_}]\n'
        "workloads:" + workloads + "\n"
    )
    code, _, err = gxo("run", str(path), "--only", "migrate")
    assert code == 2
    assert err.strip() == "error: --only: unknown workload 'migrate' (did you mean 'db_migrate'?)"


def test_loop_iteration_params_in_the_report_mask_literal_credentials(tmp_path: Path) -> None:
    # Each iteration record keeps its rendered params: a literal basic-auth password
    # and an API key header were in the report, though nowhere else.
    path = write(
        tmp_path,
        """
        schemaVersion: "1.0.0"
        name: iter
        workloads:
          - name: l
            loop: [1, 2]
            process:
              module: http:request
              params:
                url: "http://127.0.0.1:9/{{ item }}"
                auth: {type: basic, username: u, password: LitIterPw1}
                headers: {X-Api-Key: LitIterKey2, Accept: text/plain}
                timeout: 2s
        """,
    )
    code, out, err = gxo("run", str(path), "-q", "--report", "-")
    assert code == 1
    assert "LitIter" not in out + err
    params = report_of(out)["workloads"]["l"]["iterations"][0]["params"]
    assert params["auth"] == {"type": "basic", "username": "u", "password": "***"}
    assert params["headers"] == {"X-Api-Key": "***", "Accept": "text/plain"}
