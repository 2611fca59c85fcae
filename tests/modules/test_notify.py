"""email:send against aiosmtpd on loopback (plain, STARTTLS with a trustme CA, implicit
TLS, AUTH, attachments, HTML); slack:post_message and pagerduty:trigger_event against
test:mock_http_server (answers, refusals, unreachable servers, redaction)."""

from __future__ import annotations

import email
import email.policy
import ssl
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.moto_s3 import free_port

from gxo.modules.testkit import run_module, run_playbook_text

PASSWORD = "s3cret-smtp-pw"


class Inbox:
    def __init__(self) -> None:
        self.mails: list[dict[str, Any]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.mails.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "message": email.message_from_bytes(envelope.content, policy=email.policy.default),
                "tls": session.ssl is not None,
                "login": session.authenticated and getattr(session, "login_data", None),
            }
        )
        return "250 Message accepted"


def _authenticator(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult

    ok = auth_data.login == b"gxo" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import trustme
    from aiosmtpd.controller import Controller

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    inbox = Inbox()
    starttls = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_ctx,
        authenticator=_authenticator,
        auth_require_tls=True,
    )
    implicit = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        ssl_context=server_ctx,
        authenticator=_authenticator,
    )
    starttls.start()
    implicit.start()
    try:
        yield {
            "inbox": inbox,
            "port": starttls.port,
            "tls_port": implicit.port,
            "ca_file": str(ca_file),
        }
    finally:
        starttls.stop()
        implicit.stop()


def mail(smtp: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": smtp["port"],
        "from": "gxo@example.com",
        "to": "ops@example.com",
        "subject": "hello",
        "body": "plain body\n",
        **extra,
    }


async def test_plain_html_attachments_cc_bcc(smtp: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "report.csv").write_text("a,b\n1,2\n")
    (tmp_path / "blob").write_bytes(b"\x00\x01")
    inbox = smtp["inbox"]
    inbox.mails.clear()
    r = await run_module(
        "email:send",
        mail(
            smtp,
            starttls=False,
            to=["ops@example.com", "dev@example.com"],
            cc="lead@example.com",
            bcc=["audit@example.com"],
            html="<p>html body</p>",
            attachments=["report.csv", {"file": "blob", "filename": "data.bin"}],
            headers={"X-Run": "42"},
        ),
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert r.summary["recipients"] == [
        "ops@example.com",
        "dev@example.com",
        "lead@example.com",
        "audit@example.com",
    ]
    assert r.summary["attachments"] == 2 and r.summary["sent"] is True
    (got,) = inbox.mails
    assert got["tls"] is False and got["to"] == r.summary["recipients"]
    message = got["message"]
    assert message["Subject"] == "hello" and message["X-Run"] == "42"
    assert message["Cc"] == "lead@example.com" and message["Bcc"] is None
    assert message["Message-ID"] == r.summary["message_id"]
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == "plain body\n"
    assert message.get_body(("html",)).get_content().strip() == "<p>html body</p>"
    parts = {p.get_filename(): p for p in message.iter_attachments()}
    assert parts["report.csv"].get_content_type() == "text/csv"
    assert parts["report.csv"].get_content().replace("\r\n", "\n") == "a,b\n1,2\n"
    assert parts["data.bin"].get_content() == b"\x00\x01"


async def test_starttls_and_auth(smtp: dict[str, Any]) -> None:
    inbox = smtp["inbox"]
    inbox.mails.clear()
    params = mail(smtp, starttls=True, ca_file=smtp["ca_file"], username="gxo", password=PASSWORD)
    r = await run_module("email:send", params)
    assert r.ok, r.error
    (got,) = inbox.mails
    assert got["tls"] is True
    # a wrong password: a clear error that does not show it
    bad = await run_module("email:send", {**params, "password": "wrong-pw-123"})
    assert bad.status == "Failed"
    assert "login as 'gxo' failed" in str(bad.error) and "wrong-pw-123" not in str(bad.error)
    # the server's certificate is verified: unknown CA
    r = await run_module("email:send", {**params, "ca_file": None})
    assert r.status == "Failed" and "certificate" in str(r.error).lower()
    r = await run_module("email:send", {**params, "ca_file": None, "verify": False})
    assert r.ok, r.error


async def test_implicit_tls(smtp: dict[str, Any]) -> None:
    inbox = smtp["inbox"]
    inbox.mails.clear()
    r = await run_module(
        "email:send",
        mail(smtp, port=smtp["tls_port"], ssl=True, ca_file=smtp["ca_file"], html="<b>x</b>"),
    )
    assert r.ok, r.error
    assert inbox.mails[0]["message"].get_body(("html",)).get_content().strip() == "<b>x</b>"


async def test_email_errors(smtp: dict[str, Any], tmp_path: Path) -> None:
    r = await run_module("email:send", mail(smtp, starttls=False, to="nobody@example.com"))
    assert r.status == "Failed" and "refused every recipient: nobody@example.com (550" in str(
        r.error
    )
    r = await run_module(
        "email:send", mail(smtp, starttls=False, to=["ops@example.com", "nobody@example.com"])
    )
    assert r.status == "Failed" and "refused some recipients: nobody@example.com" in str(r.error)
    r = await run_module("email:send", mail(smtp, port=free_port(), starttls=False))
    assert r.status == "Failed" and "cannot send through SMTP server 127.0.0.1" in str(r.error)
    r = await run_module("email:send", mail(smtp, attachments=["missing.txt"]), workspace=tmp_path)
    assert r.status == "Failed" and "attachments[0].file" in str(r.error)
    assert "does not exist" in str(r.error)
    r = await run_module("email:send", mail(smtp, ssl=True, starttls=True))
    assert r.status == "Failed" and "exclude each other" in str(r.error)
    r = await run_module("email:send", mail(smtp, username="gxo"))
    assert r.status == "Failed" and "both username and password" in str(r.error)
    r = await run_module("email:send", mail(smtp, to=[]))
    assert r.status == "Failed" and "at least one recipient" in str(r.error)


# -- slack / pagerduty against test:mock_http_server ----------------------------------------

PLAYBOOK = """
schemaVersion: "1.0.0"
name: notify
workloads:
  - name: saas
    process:
      module: test:mock_http_server
      params:
        handlers:
          - { method: POST, path: /api/chat.postMessage, json: { ok: false, error: channel_not_found } }
          - { method: POST, path: /hooks/bad, status_code: 404, body: no_service }
          - method: POST
            path: /v2/enqueue
            status_code: 400
            json: { status: invalid event, message: Event object is invalid, errors: [Length of 'routing_key' is incorrect] }
          - { method: POST, path: /html/api/chat.postMessage, body: "<html>gateway</html>" }
    register: saas
{workloads}
"""


async def run_notify(workloads: str, **options: Any) -> Any:
    text = PLAYBOOK.replace("{workloads}", textwrap.indent(textwrap.dedent(workloads), "  "))
    return await run_playbook_text(text, **options)


async def test_slack_and_pagerduty_refusals() -> None:
    result = await run_notify(
        """
        - name: slack
          process:
            module: slack:post_message
            params: { base_url: "{{ saas.server_url }}", token: xoxb-tok-9876, channel: nope, text: hi }
        - name: hook
          process:
            module: slack:post_message
            params: { webhook_url: "{{ saas.server_url }}/hooks/bad", text: hi }
        - name: html
          process:
            module: slack:post_message
            params: { base_url: "{{ saas.server_url }}/html", token: xoxb-tok-9876, channel: c, text: hi }
        - name: pd
          process:
            module: pagerduty:trigger_event
            params:
              base_url: "{{ saas.server_url }}"
              routing_key: short
              summary: s
              source: h
        - name: down
          process:
            module: pagerduty:trigger_event
            params:
              base_url: "http://127.0.0.1:1"
              routing_key: R0UTINGKEY0123456789
              event_action: resolve
              dedup_key: k
        - name: slack_down
          process:
            module: slack:post_message
            params: { webhook_url: "http://127.0.0.1:1/hooks/T0/B0/SECRETPART", text: hi }
        """
    )
    states = result.states
    assert "Slack refused the message to 'nope': channel_not_found" in states["slack"].error
    assert "HTTP 404: no_service" in states["hook"].error
    assert "without JSON" in states["html"].error
    assert "HTTP 400: Length of 'routing_key' is incorrect" in states["pd"].error
    assert "cannot reach http://127.0.0.1:1" in states["down"].error
    assert "cannot reach the webhook URL" in states["slack_down"].error
    assert "SECRETPART" not in states["slack_down"].error
    requests = states["saas"].summary["requests"]
    assert all("xoxb-tok-9876" not in str(r) for r in requests)
    assert "xoxb-tok-9876" not in states["slack"].error


async def test_notify_check_mode_sends_nothing(smtp: dict[str, Any]) -> None:
    result = await run_notify(
        f"""
        - name: slack
          process:
            module: slack:post_message
            params: {{ base_url: "{{{{ saas.server_url }}}}", token: xoxb-t, channel: c, text: hi }}
        - name: pd
          process:
            module: pagerduty:trigger_event
            params: {{ base_url: "{{{{ saas.server_url }}}}", routing_key: k, summary: s, source: h }}
        - name: mail
          process:
            module: email:send
            params: {{ host: 127.0.0.1, port: {smtp["port"]}, from: a@b.c, to: d@e.f, subject: s, body: b }}
        """,
        check=True,
    )
    assert result.states["slack"].summary == {
        "channel": "c",
        "ts": None,
        "sent": False,
        "changed": True,
    }
    assert result.states["pd"].summary["sent"] is False
    assert result.states["mail"].summary["sent"] is False
    assert result.states["mail"].summary["recipients"] == ["d@e.f"]
    assert result.states["saas"].summary["requests"] == []


def test_param_validation() -> None:
    from gxo.modules.integration.pagerduty_trigger_event import PagerDutyTriggerEvent
    from gxo.modules.integration.slack_post_message import SlackPostMessage

    with pytest.raises(ValueError, match="exactly one of token or webhook_url"):
        SlackPostMessage.Params(text="x")
    with pytest.raises(ValueError, match="channel is required"):
        SlackPostMessage.Params(text="x", token="t")
    with pytest.raises(ValueError, match="needs summary and source"):
        PagerDutyTriggerEvent.Params(routing_key="k")
    with pytest.raises(ValueError, match="resolve needs the dedup_key"):
        PagerDutyTriggerEvent.Params(routing_key="k", event_action="resolve")
    p = PagerDutyTriggerEvent.Params.model_validate(
        {"routing_key": "k", "summary": "s", "source": "h", "class": "disk"}
    )
    assert p.event_class == "disk"
