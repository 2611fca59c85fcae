"""``http:request``: call an HTTP API (httpx, async), optionally paginating into a stream."""

from __future__ import annotations

import base64
import functools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.application._http_response import (
    DEFAULT_MAX_BODY,
    check_url,
    describe,
    read_body,
)
from gxo.modules.base import (
    CheckMode,
    Module,
    ModuleParams,
    StreamRole,
    raw_template,
    register,
)
from gxo.template.engine import is_template

if TYPE_CHECKING:
    import ssl

    import httpx

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # sent for real under gxo run --check
MASK = "***"
# Header names whose values are never shown in a check-mode summary.
_SENSITIVE_HEADER = ("authorization", "cookie", "token", "secret", "password", "key", "auth")
_SENSITIVE_FIELD = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "access_key",
    "credential",
    "authorization",
)
EXCERPT = 300  # characters of the body quoted in an error message


class BasicAuth(ModuleParams):
    type: Literal["basic"] = Field(..., description="HTTP Basic authentication")
    username: str = Field(..., description="User name")
    password: str = Field(..., description="Password (use secret('NAME'))")


class BearerAuth(ModuleParams):
    type: Literal["bearer"] = Field(..., description="Authorization: Bearer <token>")
    token: str = Field(..., min_length=1, description="The token (use secret('NAME'))")


class HeaderAuth(ModuleParams):
    type: Literal["header"] = Field(..., description="An API key sent in a header")
    name: str = Field("X-API-Key", min_length=1, description="Header name")
    value: str = Field(..., min_length=1, description="The key (use secret('NAME'))")


Auth = Annotated[BasicAuth | BearerAuth | HeaderAuth, Field(discriminator="type")]


class Paginate(ModuleParams):
    next: str = Field(
        ...,
        description="Template over `response` and `page` giving the next page's URL; empty or none stops",
    )
    max_pages: int | str = Field(
        100,
        description="Most pages fetched, the first included (a number, or a template giving one)",
    )

    @field_validator("next")
    @classmethod
    def _braced(cls, value: str) -> str:
        if not is_template(value):
            raise ValueError('next must be a template, e.g. "{{ response.json_body.next }}"')
        return value

    @field_validator("max_pages")
    @classmethod
    def _pages(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not is_template(value):
            raise ValueError(f"max_pages must be a number, got {value!r}")
        if isinstance(value, int) and value < 1:
            raise ValueError("max_pages must be at least 1")
        return value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


@register("http:request", layer="application")
class HttpRequest(Module):
    """Send an HTTP request and return the response; paginate an API listing into a stream.

    The body is ``body`` (text), ``json`` (any value, sent as JSON) or
    ``form`` (URL-encoded fields). ``auth`` is ``{type: basic, username,
    password}``, ``{type: bearer, token}`` or ``{type: header, name, value}``;
    take the secret parts from ``secret('NAME')`` and they are redacted from the
    summary, logs and report. TLS is verified against the system CAs, or
    ``ca_file``; ``skip_tls_verify: true`` turns verification off. Redirects are
    followed unless ``follow_redirects: false``.

    A status outside ``expected_status`` (default: any 2xx) fails the workload
    with the status and an excerpt of the body; the response is still in the
    summary. Use the workload's ``retry:`` to retry failures and timeouts.

    Under ``gxo run --check`` a GET, HEAD or OPTIONS request is sent as usual;
    any other method is not sent: the summary holds ``sent: false``,
    ``changed: true`` and the ``request`` that would go out (method, URL with
    its query, headers with credentials masked, body).

    ``emit`` selects a list from each response and streams its items as
    records (a non-mapping item becomes ``{value: item}``). ``paginate.next``
    gives the URL of the following page (relative URLs are resolved; empty or
    none stops; a URL already fetched stops), up to ``paginate.max_pages``
    pages. Records are emitted page by page, before the next page is
    requested, so a slow consumer slows the crawl (back-pressure). Both
    templates see ``response`` — ``status_code``, ``headers`` (lower-case
    names), ``body``, ``json_body``, ``links`` (the parsed ``Link`` header:
    ``links.next.url``), ``url`` — and ``page`` (1 for the first page).

    Example:
        - name: create_user
          process:
            module: http:request
            params:
              url: "{{ api }}/users"
              method: POST
              json: { name: ada }
              auth: { type: bearer, token: "{{ secret('API_TOKEN') }}" }
              expected_status: [200, 201]
              timeout: 10s
          register: created
        - name: all_users
          process:
            module: http:request
            params:
              url: "{{ api }}/users"
              query: { per_page: 100 }
              emit: "{{ response.json_body['items'] }}"
              paginate: { next: "{{ response.json_body.next }}", max_pages: 50 }
    """

    class Params(ModuleParams):
        url: str = Field(..., min_length=1, description="URL to request (http:// or https://)")
        method: Annotated[Literal[METHODS], BeforeValidator(_upper)] = Field(  # type: ignore[valid-type]
            "GET", description="HTTP method: GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS"
        )
        headers: dict[str, str] = Field(default_factory=dict, description="Request headers")
        query: dict[str, Any] = Field(
            default_factory=dict, description="Query parameters added to the URL"
        )
        body: str | None = Field(None, description="Request body as text")
        json_data: Any = Field(
            None, alias="json", description="Request body: this value encoded as JSON"
        )
        form: dict[str, Any] | None = Field(
            None, description="Request body: these fields, form-URL-encoded"
        )
        timeout: Duration = Field(
            "30s",
            validate_default=True,
            description="Timeout for connecting and for each read/write (10s, 500ms)",
        )
        skip_tls_verify: bool = Field(
            False, description="Do not verify the server's TLS certificate"
        )
        ca_file: str | None = Field(
            None,
            min_length=1,
            description="PEM file of CA certificates to verify the server against",
        )
        auth: Auth | None = Field(
            None, description="Authentication: {type: basic|bearer|header, ...}"
        )
        follow_redirects: bool = Field(True, description="Follow 3xx redirects")
        max_body_bytes: int = Field(
            DEFAULT_MAX_BODY,
            ge=1,
            description="Largest response body read, in bytes (default 64 MiB); a bigger one fails the request",
        )
        expected_status: int | list[int] | None = Field(
            None, description="Status code(s) that count as success (default: any 2xx)"
        )
        emit: str | None = raw_template(
            None,
            description="Template over `response` selecting a list whose items are streamed as records",
        )
        paginate: Paginate | None = raw_template(
            None,
            description="{next: template of the next page URL, max_pages}: fetch pages until next is empty",
        )

        @field_validator("expected_status")
        @classmethod
        def _statuses(cls, value: int | list[int] | None) -> int | list[int] | None:
            codes = [value] if isinstance(value, int) else value or []
            bad = [c for c in codes if not 100 <= c <= 599]
            if bad or value == []:
                raise ValueError(
                    f"expected_status must be HTTP status codes (100-599), got {value!r}"
                )
            return value

        @field_validator("emit")
        @classmethod
        def _emit_braced(cls, value: str | None) -> str | None:
            if value is not None and not is_template(value):
                raise ValueError('emit must be a template, e.g. "{{ response.json_body.items }}"')
            return value

        @model_validator(mode="after")
        def _consistent(self) -> HttpRequest.Params:
            given = [
                name
                for name, v in (("body", self.body), ("json", self.json_data), ("form", self.form))
                if v is not None
            ]
            if len(given) > 1:
                raise ValueError(
                    f"give only one of body, json and form (got {' and '.join(given)})"
                )
            if self.paginate is not None and self.emit is None:
                raise ValueError("paginate needs emit: the template selecting each page's items")
            if self.skip_tls_verify and self.ca_file:
                raise ValueError("ca_file has no effect with skip_tls_verify: true")
            if self.auth is not None:
                taken = "authorization" if self.auth.type != "header" else self.auth.name.lower()
                if any(k.lower() == taken for k in self.headers):
                    raise ValueError(
                        f"auth sets the {taken!r} header: do not also set it in headers"
                    )
            return self

    produces = True
    consumes = StreamRole.none
    template_names = frozenset({"response", "page"})
    summary = {
        "status_code": "HTTP status of the (last) response",
        "headers": "response headers (lower-case names)",
        "body": "response body as text",
        "json_body": "the body parsed as JSON, when the response is JSON (else null)",
        "url": "final URL, after redirects",
        "links": "the parsed Link header: {rel: {url, rel}}",
        "latency_ms": "time from sending the request to the end of the body",
        "pages": "pages fetched (with emit)",
        "records_emitted": "records streamed (with emit)",
        "truncated": "with paginate: true when max_pages stopped it before the last page",
        "sent": "gxo run --check, a method other than GET/HEAD/OPTIONS: false (not sent)",
        "request": "gxo run --check, not sent: {method, url, headers (masked), body/json/form}",
        "changed": "gxo run --check, not sent: true (the request could change the server)",
    }

    path_params = ("ca_file",)
    check_mode = CheckMode.predict

    def check_mode_for(self, params: Params) -> CheckMode:
        return CheckMode.safe if params.method in SAFE_METHODS else CheckMode.predict

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        """The request a non-GET would send (not sent: it could change the server)."""
        import httpx

        check_url(ctx, params.url)
        _mask_url_password(ctx, params.url)
        url = httpx.URL(params.url)
        if params.query:
            url = url.copy_merge_params(params.query)
        headers = {k: MASK if _sensitive(k) else v for k, v in params.headers.items()}
        auth = params.auth
        if isinstance(auth, BasicAuth):
            headers["Authorization"] = f"Basic {MASK}"
            pair = f"{auth.username}:{auth.password}"
            if ctx.redact(pair) != pair:  # as perform: the encoded pair is a secret too
                ctx.run.secrets.add(base64.b64encode(pair.encode()).decode())
        elif isinstance(auth, BearerAuth):
            headers["Authorization"] = f"Bearer {MASK}"
        elif isinstance(auth, HeaderAuth):
            headers[auth.name] = MASK
        request: dict[str, Any] = {"method": params.method, "url": str(url), "headers": headers}
        if params.body is not None:
            request["body"] = params.body
        elif params.json_data is not None:
            request["json"] = _mask_fields(params.json_data, ctx.redact)
        elif params.form is not None:
            request["form"] = _mask_fields(params.form, ctx.redact)
        ctx.log(f"check mode: {params.method} {url} not sent")
        return {"changed": True, "sent": False, "request": ctx.redact(request)}

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        _mask_url_password(ctx, params.url)
        ca_path = ctx.resolve_path(params.ca_file, param="ca_file") if params.ca_file else None
        max_pages = _max_pages(ctx, params.paginate) if params.paginate else 1
        render_emit = ctx.compile(params.emit) if params.emit else None
        render_next = ctx.compile(params.paginate.next) if params.paginate else None
        client = await ctx.to_thread(_make_client, ctx, params, ca_path)
        async with client:
            request = _Request(ctx, client, params)
            url: str | None = params.url
            seen: set[str] = set()
            page = emitted = 0
            truncated = False
            view: dict[str, Any] = {}
            while url:
                page += 1
                view = await request.send(url, first=page == 1)
                seen.update((request.requested_url, view["url"]))  # before and after redirects
                if render_emit is not None:
                    emitted += await _emit(ctx, render_emit, view, page)
                if render_next is None:
                    break
                url = _next_url(ctx, render_next, view, page)
                if url and url in seen:
                    ctx.log(
                        f"pagination stopped: next page {url} was already fetched", level="warning"
                    )
                    break
                if url and page >= max_pages:
                    truncated = True
                    ctx.log(
                        f"pagination stopped after max_pages={max_pages}; more pages remain",
                        level="warning",
                    )
                    break
        summary = dict(view)
        if render_emit is not None:
            summary.update(pages=page, records_emitted=emitted)
            if params.paginate is not None:
                summary["truncated"] = truncated
        return summary


def _mask_fields(value: Any, redact: Any) -> Any:
    """The check-mode request's json/form with literal credential-named fields masked
    (``{"password": "..."}``): a real run never shows the body it sends. A secret()
    there is left to the redaction, which shows it as ``[REDACTED]``."""
    if isinstance(value, dict):
        return {
            k: MASK
            if isinstance(k, str)
            and any(w in k.lower() for w in _SENSITIVE_FIELD)
            and redact(v) == v
            else _mask_fields(v, redact)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_fields(v, redact) for v in value]
    return value


def _mask_url_password(ctx: ModuleContext, url: str) -> None:
    """A password in the URL (``https://user:pw@host``) is masked like a secret(): in
    errors, logs, the check-mode request and the summary's ``url``."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if not password or len(password) < 4:
        return
    for value in {password, unquote(password)}:
        ctx.run.secrets.add(value)
    username = unquote(urlsplit(url).username or "")
    ctx.run.secrets.add(base64.b64encode(f"{username}:{unquote(password)}".encode()).decode())


def _sensitive(header: str) -> bool:
    name = header.lower()
    return any(word in name for word in _SENSITIVE_HEADER)


def _max_pages(ctx: ModuleContext, paginate: Paginate) -> int:
    value: Any = paginate.max_pages
    if isinstance(value, str):
        value = ctx.render(value, path="paginate.max_pages")
    try:
        pages = int(value)
    except (TypeError, ValueError):
        raise ctx.fail(f"paginate.max_pages must be a number, got {value!r}") from None
    if pages < 1:
        raise ctx.fail(f"paginate.max_pages must be at least 1, got {pages}")
    return pages


def _make_client(
    ctx: ModuleContext, params: HttpRequest.Params, ca_path: Path | None
) -> httpx.AsyncClient:
    """Built in a thread: loading CA certificates reads files."""
    import ssl

    import httpx

    verify: bool | ssl.SSLContext
    if params.skip_tls_verify:
        verify = False
    elif ca_path is not None:
        try:
            verify = _ca_context(str(ca_path), ca_path.stat().st_mtime_ns)
        except FileNotFoundError:
            raise ctx.fail(f"ca_file not found: {ca_path}") from None
        except (ssl.SSLError, OSError) as exc:
            raise ctx.fail(f"ca_file {ca_path} is not a usable PEM CA bundle: {exc}") from None
    else:
        verify = _system_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    return httpx.AsyncClient(
        verify=verify, timeout=params.timeout, follow_redirects=params.follow_redirects
    )


# Loading a CA bundle takes ~50 ms; an SSLContext can be shared by many clients,
# so each distinct bundle is loaded once per process (a changed file is reloaded).
@functools.lru_cache(maxsize=8)
def _system_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    import httpx

    return httpx.create_ssl_context()  # honours SSL_CERT_FILE / SSL_CERT_DIR, else certifi


@functools.lru_cache(maxsize=32)
def _ca_context(path: str, mtime_ns: int) -> ssl.SSLContext:
    import ssl

    return ssl.create_default_context(cafile=path)


class _Request:
    """Sends the workload's request to a URL and describes the response."""

    def __init__(
        self, ctx: ModuleContext, client: httpx.AsyncClient, params: HttpRequest.Params
    ) -> None:
        import httpx

        self.ctx = ctx
        self.client = client
        self.params = params
        self.headers = dict(params.headers)
        self.auth: httpx.Auth | None = None
        self.requested_url = ""
        auth = params.auth
        if isinstance(auth, BasicAuth):
            self.auth = httpx.BasicAuth(auth.username, auth.password)
            pair = f"{auth.username}:{auth.password}"
            if ctx.redact(pair) != pair:
                # The header carries the secret base64-encoded, where value-based
                # redaction cannot see it (a server echoing headers back): register it too.
                ctx.run.secrets.add(base64.b64encode(pair.encode()).decode())
        elif isinstance(auth, BearerAuth):
            self.headers["Authorization"] = f"Bearer {auth.token}"
        elif isinstance(auth, HeaderAuth):
            self.headers[auth.name] = auth.value
        self.body: dict[str, Any] = {}
        if params.body is not None:
            self.body["content"] = params.body.encode()
        elif params.json_data is not None:
            self.body["json"] = params.json_data
        elif params.form is not None:
            self.body["data"] = params.form

    async def send(self, url: str, *, first: bool) -> dict[str, Any]:
        import httpx

        p = self.params
        ctx = self.ctx
        # Later pages come from the API's own next link: the query is already in it.
        query = p.query if first and p.query else None
        where = f"{p.method} {url}"
        check_url(ctx, url)
        started = time.perf_counter()
        try:
            # Streamed, so that a body over max_body_bytes is refused as it arrives.
            async with self.client.stream(
                p.method,
                url,
                params=query,
                headers=self.headers,
                auth=self.auth or httpx.USE_CLIENT_DEFAULT,
                **self.body,
            ) as response:
                content = await read_body(ctx, response, p.max_body_bytes, where)
        except httpx.TimeoutException as exc:
            raise ctx.fail(
                f"{where}: {_timeout_kind(exc)} timed out after {_seconds(p.timeout)} (param 'timeout')"
            ) from None
        except httpx.TooManyRedirects:
            raise ctx.fail(f"{where}: too many redirects") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise ctx.fail(f"invalid url {url!r}: {exc}") from None
        except httpx.ConnectError as exc:
            raise ctx.fail(_connect_message(where, exc)) from None
        except httpx.HTTPError as exc:
            raise ctx.fail(f"{where}: {type(exc).__name__}: {exc or 'request failed'}") from None
        except ExceptionGroup as group:
            # The transport's task group wraps what it did not expect: name the first cause.
            cause = _first_leaf(group)
            raise ctx.fail(f"{where}: cannot connect: {cause or type(cause).__name__}") from None
        latency = round((time.perf_counter() - started) * 1000, 3)
        self.requested_url = str(
            (response.history[0] if response.history else response).request.url
        )
        view = await describe(ctx, response, content, latency)
        ctx.log(f"{where} -> {response.status_code} {response.reason_phrase} ({latency:.0f} ms)")
        expected = p.expected_status
        ok = (
            200 <= response.status_code < 300
            if expected is None
            else response.status_code in ([expected] if isinstance(expected, int) else expected)
        )
        if not ok:
            wanted = (
                "2xx"
                if expected is None
                else ", ".join(
                    str(c) for c in ([expected] if isinstance(expected, int) else expected)
                )
            )
            excerpt = " ".join(view["body"][:EXCERPT].split())
            more = "..." if len(view["body"]) > EXCERPT else ""
            detail = f": {excerpt}{more}" if excerpt else ""
            raise ctx.fail(
                f"{where} returned HTTP {response.status_code} {response.reason_phrase} (expected {wanted}){detail}",
                summary=view,
            )
        return view


async def _emit(ctx: ModuleContext, render: Any, view: dict[str, Any], page: int) -> int:
    items = render(path="emit", response=view, page=page)
    if items is None:
        return 0
    if isinstance(items, dict) or not isinstance(items, list | tuple):
        kind = "a mapping" if isinstance(items, dict) else type(items).__name__
        raise ctx.fail(f"emit must select a list, got {kind} on page {page}", summary=view)
    for item in items:
        await ctx.emit(item if isinstance(item, dict) else {"value": item})
    return len(items)


def _next_url(ctx: ModuleContext, render: Any, view: dict[str, Any], page: int) -> str | None:
    from urllib.parse import urljoin

    value = render(path="paginate.next", response=view, page=page)
    if value is None or value is False or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ctx.fail(
            f"paginate.next must give a URL string, got {type(value).__name__}: {value!r}",
            summary=view,
        )
    return urljoin(view["url"], value.strip())


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    import httpx

    return {
        httpx.ConnectTimeout: "connecting",
        httpx.ReadTimeout: "waiting for the response",
        httpx.WriteTimeout: "sending the request",
        httpx.PoolTimeout: "waiting for a connection",
    }.get(type(exc), "the request")


def _seconds(value: float) -> str:
    from gxo.config.durations import format_duration

    return format_duration(value)


def _connect_message(where: str, exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return f"{where}: TLS certificate verification failed ({text}); set ca_file to the CA that signed it, or skip_tls_verify: true"
    return f"{where}: cannot connect: {text}"
