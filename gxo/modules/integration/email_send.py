"""``email:send``: send an email over SMTP (aiosmtplib)."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register

MAX_ATTACHMENT = 25 * 1024 * 1024


class Attachment(ModuleParams):
    """One attached file."""

    file: str = Field(..., min_length=1, description="Local file to attach")
    filename: str | None = Field(None, description="Name shown to the reader (default: the file's)")
    content_type: str | None = Field(None, description="MIME type (default: guessed from the name)")


def _addresses(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    out = []
    for item in items:
        for part in item.split(","):
            if part.strip():
                out.append(part.strip())
    return out


@register("email:send", layer="integration")
class EmailSend(Module):
    """Send an email (text, optional HTML alternative, attachments) through an SMTP server.

    ``ssl: true`` is implicit TLS (port 465); otherwise the connection is upgraded with
    STARTTLS when ``starttls: true`` (required) or, by default, when the server offers
    it. ``username``/``password`` log in (AUTH); the password is a secret. The server's
    certificate is verified (``ca_file`` for a private CA, ``verify: false`` to skip).
    A recipient the server refuses fails the workload naming it; ``bcc`` recipients
    get the mail without appearing in its headers. Under ``--check`` nothing is sent.

    Example:
        - name: mail_report
          process:
            module: email:send
            params:
              host: smtp.example.com
              port: 587
              from: "gxo@example.com"
              to: [ops@example.com]
              subject: "report {{ _gxo.run_id }}"
              body: "See the attachment."
              attachments: [{ file: out/report.csv }]
              username: gxo
              password: "{{ secret('SMTP_PASSWORD') }}"
    """

    class Params(ModuleParams):
        host: str = Field(..., min_length=1, description="SMTP server")
        port: int | None = Field(
            None,
            ge=1,
            le=65535,
            description="Port (default 465 with ssl, else 587 with username, else 25)",
        )
        sender: str = Field(..., alias="from", min_length=3, description="From address")
        to: str | list[str] = Field(..., description="Recipient(s)")
        cc: str | list[str] | None = Field(None, description="Cc recipient(s)")
        bcc: str | list[str] | None = Field(None, description="Bcc recipient(s) (not in headers)")
        reply_to: str | None = Field(None, description="Reply-To address")
        subject: str = Field(..., description="Subject")
        body: str = Field("", description="Plain-text body")
        html: str | None = Field(None, description="HTML body (sent as an alternative to body)")
        attachments: list[Attachment | str] = Field(
            default_factory=list,
            description="Files to attach: paths or {file, filename, content_type}",
        )
        headers: dict[str, str] = Field(default_factory=dict, description="Extra headers")
        username: str | None = Field(None, description="Login name (AUTH)")
        password: str | None = Field(None, description="Login password: a secret")
        ssl: bool = Field(False, description="Implicit TLS from the first byte (port 465)")
        starttls: bool | None = Field(
            None,
            description="true: require STARTTLS; false: never; default: when the server offers it",
        )
        verify: bool = Field(True, description="Verify the server's TLS certificate")
        ca_file: str | None = Field(None, description="PEM file of CA certificates to trust")
        timeout: Duration = Field(30.0, description="Seconds per SMTP operation")

        @field_validator("attachments", mode="after")
        @classmethod
        def _as_objects(cls, value: list[Any]) -> list[Any]:
            return [Attachment(file=v) if isinstance(v, str) else v for v in value]

        @model_validator(mode="after")
        def _consistent(self) -> EmailSend.Params:
            if not _addresses(self.to):
                raise ValueError("to: give at least one recipient")
            if self.ssl and self.starttls:
                raise ValueError("ssl (implicit TLS) and starttls exclude each other")
            if (self.username is None) != (self.password is None):
                raise ValueError("give both username and password, or neither")
            if self.html is None and not self.body and not self.attachments:
                raise ValueError("nothing to send: give body, html or attachments")
            return self

    summary = {
        "message_id": "the Message-ID header of the mail",
        "recipients": "every address the mail was sent to (to, cc, bcc)",
        "attachments": "number of attached files",
        "size": "size of the message in bytes",
        "sent": "true when the server accepted the mail (false under --check)",
        "changed": "true: a mail is a change",
    }
    path_params = ("ca_file",)
    check_mode = CheckMode.predict

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        if params.password:
            ctx.run.secrets.add(params.password)
        message, recipients = await self._build(ctx, params)
        return {
            "message_id": message["Message-ID"],
            "recipients": recipients,
            "attachments": len(params.attachments),
            "size": len(message.as_bytes()),
            "sent": False,
            "changed": True,
        }

    async def _build(self, ctx: ModuleContext, params: Params) -> tuple[Any, list[str]]:
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        message = EmailMessage()
        message["From"] = params.sender
        to, cc, bcc = _addresses(params.to), _addresses(params.cc), _addresses(params.bcc)
        message["To"] = ", ".join(to)
        if cc:
            message["Cc"] = ", ".join(cc)
        if params.reply_to:
            message["Reply-To"] = params.reply_to
        message["Subject"] = params.subject
        message["Date"] = formatdate(localtime=False)
        domain = params.sender.rpartition("@")[2].strip("> ") or None
        message["Message-ID"] = make_msgid(domain=domain)
        for name, value in params.headers.items():
            message[name] = value
        message.set_content(params.body or "")
        if params.html is not None:
            message.add_alternative(params.html, subtype="html")
        for i, att in enumerate(params.attachments):
            assert isinstance(att, Attachment)
            path = ctx.resolve_path(att.file, param=f"attachments[{i}].file")
            data = await ctx.to_thread(_read, path)
            if isinstance(data, str):
                raise ctx.fail(f"param attachments[{i}].file: {data}")
            name = att.filename or path.name
            ctype = att.content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
            maintype, _, subtype = ctype.partition("/")
            message.add_attachment(
                data, maintype=maintype, subtype=subtype or "octet-stream", filename=name
            )
        return message, to + cc + bcc

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        import ssl as ssl_mod

        import aiosmtplib

        if params.password:
            ctx.run.secrets.add(params.password)
        message, recipients = await self._build(ctx, params)
        port = params.port or (465 if params.ssl else 587 if params.username else 25)
        context: ssl_mod.SSLContext | None = None
        if params.ssl or params.starttls is not False:
            context = await ctx.to_thread(_tls_context, ctx, params)
        where = f"SMTP server {params.host}:{port}"
        try:
            errors, _reply = await aiosmtplib.send(
                message,
                sender=params.sender,
                recipients=recipients,
                hostname=params.host,
                port=port,
                username=params.username,
                password=params.password,
                use_tls=params.ssl,
                start_tls=params.starttls,
                tls_context=context,
                timeout=params.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(f"{r.recipient} ({r.code} {r.message})" for r in exc.recipients)
            raise ctx.fail(f"{where} refused every recipient: {ctx.redact(refused)}") from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise ctx.fail(
                f"{where}: login as {params.username!r} failed: {exc.code} {ctx.redact(exc.message)}"
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise ctx.fail(f"{where}: {exc.code} {ctx.redact(exc.message)}") from None
        except (aiosmtplib.SMTPException, OSError, ssl_mod.SSLError) as exc:
            reason = ctx.redact(str(exc) or type(exc).__name__)
            raise ctx.fail(f"cannot send through {where}: {reason}") from None
        if errors:
            refused = ", ".join(f"{addr} ({code} {text})" for addr, (code, text) in errors.items())
            raise ctx.fail(
                f"{where} refused some recipients: {ctx.redact(refused)}",
                summary={"message_id": message["Message-ID"], "sent": True, "changed": True},
            )
        return {
            "message_id": message["Message-ID"],
            "recipients": recipients,
            "attachments": len(params.attachments),
            "size": len(message.as_bytes()),
            "sent": True,
            "changed": True,
        }


def _read(path: Path) -> bytes | str:
    """The file's bytes, or why it cannot be attached."""
    try:
        size = path.stat().st_size
        if size > MAX_ATTACHMENT:
            return f"{path} is {size} bytes (at most {MAX_ATTACHMENT} can be attached)"
        return path.read_bytes()
    except IsADirectoryError:
        return f"{path} is a directory"
    except FileNotFoundError:
        return f"{path} does not exist"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"


def _tls_context(ctx: ModuleContext, params: EmailSend.Params) -> Any:
    import ssl

    if not params.verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = str(ctx.resolve_path(params.ca_file, param="ca_file")) if params.ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ctx.fail(f"param ca_file: cannot load {cafile}: {exc}") from None
