"""``database:query``: run SQL on SQLite, PostgreSQL or MariaDB/MySQL (SQLAlchemy Core)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.errors import GxoError
from gxo.modules.base import CheckMode, CheckUnsupported, Module, ModuleParams, StreamRole, register
from gxo.modules.data._records import to_jsonable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from sqlalchemy.engine import URL, Connection, CursorResult, Engine

    from gxo.template.secrets import SecretRegistry

CLEANUP_TIMEOUT = 10.0  # seconds a cancelled run waits for the connection to close
# Default drivers: the ones GXO ships (SQLAlchemy's own defaults are not installed).
_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_PLAIN = frozenset({str, int, float, bool, type(None)})
_PASSWORD = re.compile(r":[^:@/]*@")  # ":password@" in a URL too broken to parse
# sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db (the query string is not the path)
_SQLITE_FILE = re.compile(r"^sqlite(\+\w+)?:///(?P<db>[^?]*)")
# Statements whose rows may be fetched through a server-side cursor (PostgreSQL only
# allows a plain query there; the others are buffered by the driver).
_STREAMABLE = re.compile(r"^\s*\(*\s*(select|values|table|with)\b", re.IGNORECASE)
_WRITES = re.compile(r"\b(insert|update|delete|merge)\b", re.IGNORECASE)
# gxo run --check runs writes in a transaction it rolls back: statements that end a
# transaction (or cannot run in one) would defeat that, anywhere in the text.
_TX_CONTROL = re.compile(
    r"(^|;)\s*(commit|end|rollback|abort|begin|start\s+transaction|savepoint|release|"
    r"prepare\s+transaction|set\s+(session\s+|global\s+)?autocommit|vacuum|checkpoint|"
    r"detach|attach)\b",
    re.IGNORECASE,
)
# A SELECT that writes: SELECT ... INTO (a table, variables, a file), sequences.
_SELECT_WRITES = re.compile(r"\b(into|nextval|setval)\b", re.IGNORECASE)
# Writes to files on the server, which no rollback undoes.
_SERVER_FILES = re.compile(
    r"\binto\s+(outfile|dumpfile)\b|(^|;)\s*copy\b[^;]*\bto\b", re.IGNORECASE
)
# MySQL/MariaDB commit implicitly before and after these: no rollback undoes them.
_MYSQL_IMPLICIT_COMMIT = re.compile(
    r"(^|;)\s*(create|alter|drop|truncate|rename|grant|revoke|lock|unlock|flush|optimize|"
    r"analyze|repair|install|uninstall|load\s+index|cache\s+index|set\s+password)\b",
    re.IGNORECASE,
)


class Statement(ModuleParams):
    query: str = Field(
        ..., min_length=1, description="SQL statement, with :name placeholders for params"
    )
    params: dict[str, Any] | None = Field(
        None, description="Values bound to the statement's :name placeholders"
    )


@register("database:query", layer="application")
class DatabaseQuery(Module):
    """Run SQL against SQLite, PostgreSQL or MariaDB/MySQL.

    ``url`` is a SQLAlchemy URL: ``sqlite:///app.db`` (relative paths resolve
    in the workspace; the default is ``gxo.db`` there), ``postgresql://user@host/db``
    (psycopg 3), ``mysql://user@host/db`` or ``mariadb://...`` (PyMySQL).

    Values go in ``params`` and are bound to ``:name`` placeholders by the
    driver. Never template values into ``query`` itself: that is how SQL
    injection happens.

    Rows of a statement that returns rows (SELECT, ... RETURNING) are streamed
    as records (dates become ISO 8601 strings, decimals numbers, bytes base64)
    and the summary holds the first ``max_rows``; other statements report
    ``rows_affected``. ``many`` runs the statement once per params mapping
    (executemany). ``statements`` runs several in order, each with its own
    params; with ``transaction: true`` all of them commit together or, on an
    error, none does. The connection is closed when the workload ends.

    Under ``gxo run --check`` read-only statements (SELECT, VALUES, WITH without
    a write) run as usual; anything else runs in one transaction that is rolled
    back, so the summary has the real ``rows_affected`` with ``rolled_back:
    true`` and ``changed``. A statement that ends the transaction (COMMIT,
    BEGIN, VACUUM ...), one writing a server file (INTO OUTFILE, COPY ... TO)
    and, on MySQL/MariaDB, DDL (committed implicitly) are not run: the workload
    is skipped. MyISAM tables cannot roll back: avoid them.

    Example:
        - name: create
          process:
            module: database:query
            params: { query: "CREATE TABLE IF NOT EXISTS t (name TEXT, n INTEGER)" }
        - name: insert
          process:
            module: database:query
            params:
              query: "INSERT INTO t (name, n) VALUES (:name, :n)"
              many: "{{ rows.results }}"
        - name: read
          process:
            module: database:query
            params:
              url: "postgresql://app:{{ secret('DB_PASSWORD') }}@127.0.0.1/app"
              query: "SELECT name, n FROM t WHERE n > :min"
              params: { min: 2 }
          register: big
    """

    class Params(ModuleParams):
        url: str = Field(
            "sqlite:///gxo.db",
            min_length=1,
            description="SQLAlchemy database URL (sqlite, postgresql, mysql, mariadb)",
        )
        query: str | None = Field(
            None, min_length=1, description="The SQL statement, with :name placeholders"
        )
        params: dict[str, Any] | None = Field(
            None, description="Values bound to the :name placeholders of query"
        )
        many: list[dict[str, Any]] | None = Field(
            None, description="Run query once per mapping of values (executemany)"
        )
        statements: list[Statement] | None = Field(
            None,
            min_length=1,
            description="Several statements run in order, each {query, params} (instead of query)",
        )
        transaction: bool = Field(
            False, description="statements: all in one transaction, rolled back if one fails"
        )
        max_rows: int = Field(
            100, ge=0, description="Rows kept in the summary (all rows are streamed)"
        )
        fetch_size: int = Field(
            500, ge=1, le=100_000, description="Rows fetched from the server at a time"
        )
        connect_timeout: Duration = Field(
            10.0,
            description="How long to wait for the server to accept the connection and greet",
        )

        @model_validator(mode="after")
        def _check(self) -> DatabaseQuery.Params:
            if (self.query is None) == (self.statements is None):
                raise ValueError("give exactly one of 'query' or 'statements'")
            if self.params is not None and self.many is not None:
                raise ValueError("give 'params' or 'many', not both")
            if self.statements is not None and (self.params is not None or self.many is not None):
                raise ValueError("with 'statements', give each statement its own params")
            if self.transaction and self.statements is None:
                raise ValueError(
                    "'transaction: true' applies to 'statements' (a single query is already one transaction)"
                )
            if self.connect_timeout <= 0:
                raise ValueError("connect_timeout must be longer than 0s")
            return self

    produces = True
    consumes = StreamRole.none
    summary = {
        "rows": "statements returning rows: the first max_rows rows, as mappings",
        "rowcount": "statements returning rows: how many rows there were (all were streamed)",
        "columns": "statements returning rows: the column names",
        "rows_affected": "other statements: rows inserted/updated/deleted (with statements: the total)",
        "statements": "with statements: one summary per statement",
    }

    path_params = ("url",)

    @classmethod
    def literal_paths(cls, params: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        """A SQLite URL's file (``sqlite:///app.db`` -> ``app.db``); other backends have none."""
        url = params.get("url")
        match = _SQLITE_FILE.match(url) if isinstance(url, str) else None
        if match and match["db"] not in ("", ":memory:"):
            yield "url", match["db"]

    check_mode = CheckMode.predict

    def check_mode_for(self, params: Params) -> CheckMode:
        reads = all(
            _STREAMABLE.match(q) and not _WRITES.search(q) and not _SELECT_WRITES.search(q)
            for q in _queries(params)
        )
        return CheckMode.safe if reads and not self._refusal(params) else CheckMode.predict

    @staticmethod
    def _refusal(params: DatabaseQuery.Params) -> str | None:
        """Why a rolled-back run cannot be trusted for these statements (None: it can)."""
        mysql = params.url.split(":", 1)[0].split("+", 1)[0].lower() in ("mysql", "mariadb")
        for query in _queries(params):
            if m := _TX_CONTROL.search(query):
                return f"'{m.group(2).upper()}' would end the transaction check mode rolls back"
            if _SERVER_FILES.search(query):
                return "it writes a file on the server, which cannot be rolled back"
            if mysql and (m := _MYSQL_IMPLICIT_COMMIT.search(query)):
                return f"MySQL/MariaDB commits '{m.group(2).upper()}' implicitly: it cannot be rolled back"
        return None

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        """Run the statements in a transaction that is rolled back: nothing is changed."""
        reason = self._refusal(params)
        if reason is not None:
            raise CheckUnsupported(f"database:query not run: {reason}")
        missing = await ctx.to_thread(_missing_sqlite_file, ctx, params.url)
        try:
            summary = await self._run(ctx, params, rollback=True)
        finally:
            if missing is not None:  # connecting created it: a check changes nothing
                await ctx.to_thread(_remove_if_empty, missing)
        parts = summary.get("statements") or [summary]
        queries = _queries(params)
        summary["changed"] = any(
            _changes(part, query) for part, query in zip(parts, queries, strict=False)
        )
        summary["rolled_back"] = True
        ctx.log("check mode: the transaction was rolled back")
        return summary

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await self._run(ctx, params, rollback=False)

    async def _run(self, ctx: ModuleContext, params: Params, *, rollback: bool) -> dict[str, Any]:
        from concurrent.futures import ThreadPoolExecutor

        db = _Database(ctx, params, rollback=rollback)
        # One worker thread for the connection's whole life: DBAPI connections
        # (sqlite3 above all) must not hop between threads.
        executor = ThreadPoolExecutor(1, thread_name_prefix=f"gxo-db-{ctx.workload}")
        loop = asyncio.get_running_loop()

        async def call(fn: Any, *args: Any) -> Any:
            try:
                return await loop.run_in_executor(executor, fn, *args)
            except _DbError as exc:
                raise ctx.fail(str(exc)) from None

        try:
            await call(db.connect)
            if params.statements is None:
                single = await self._run_one(
                    ctx,
                    db,
                    call,
                    params.query or "",
                    params.many if params.many is not None else params.params,
                )
                if rollback:
                    await call(db.commit)  # rolls back
                return single
            results = []
            for number, stmt in enumerate(params.statements, 1):
                db.position = f"statement {number} of {len(params.statements)}"
                results.append(await self._run_one(ctx, db, call, stmt.query, stmt.params))
            await call(db.commit)
            return {
                "statements": results,
                "rows_affected": sum(r.get("rows_affected") or 0 for r in results),
                "transaction": params.transaction,
            }
        except asyncio.CancelledError:
            # Stop a long query the server is still running, or the worker thread (and
            # the process, which waits for it at exit) stays blocked until it ends.
            stop = loop.run_in_executor(None, db.interrupt)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(stop), CLEANUP_TIMEOUT)
            raise
        finally:
            await _close(db, executor, loop)

    async def _run_one(
        self, ctx: ModuleContext, db: _Database, call: Any, query: str, values: Any
    ) -> dict[str, Any]:
        returns_rows = await call(db.execute, query, values)
        if not returns_rows:
            return {"rows_affected": db.rows_affected}
        kept: list[dict[str, Any]] = []
        max_rows = db.params.max_rows
        count = 0
        send = ctx.output.send
        while rows := await call(db.fetch):
            for row in rows:
                if count < max_rows:
                    kept.append(row)
                count += 1
                await send(row)
        await call(db.finish_statement)
        ctx.log(f"{db.position or 'query'}: {count} rows")
        return {"rows": kept, "rowcount": count, "columns": db.columns}


async def _close(
    db: _Database, executor: ThreadPoolExecutor, loop: asyncio.AbstractEventLoop
) -> None:
    """Close the connection in its thread; wait for it, within reason, even when cancelled."""
    future = loop.run_in_executor(executor, db.close)
    try:
        await asyncio.wait_for(asyncio.shield(future), CLEANUP_TIMEOUT)
    except (TimeoutError, asyncio.CancelledError):
        pass  # the close still runs in the worker thread; shutdown below does not drop it
    finally:
        executor.shutdown(wait=False)


class _DbError(Exception):
    """A database failure, already worded for the user (no credentials)."""


class _Database:
    """The blocking side: every method runs in the workload's database thread."""

    def __init__(
        self, ctx: ModuleContext, params: DatabaseQuery.Params, *, rollback: bool = False
    ) -> None:
        self.params = params
        # gxo run --check: one transaction, rolled back instead of committed
        self.rollback = rollback
        self.raw_url = params.url
        self.resolve_path = functools.partial(ctx.resolve_path, param="url")
        self.confined = ctx.run.paths.confined
        self.secrets = ctx.run.secrets  # error excerpts are redacted before they are cut
        self.url: URL | None = (
            None  # parsed in the worker thread: importing SQLAlchemy takes a while
        )
        self.safe_url = _PASSWORD.sub(":***@", params.url)
        self.password = ""
        self.engine: Engine | None = None
        self.conn: Connection | None = None
        self.result: CursorResult[Any] | None = None
        self.columns: list[str] = []
        self.rows_affected: int | None = None
        self.position = ""  # "statement 2 of 3" in messages

    # -- connection --------------------------------------------------------------

    def connect(self) -> None:
        from sqlalchemy import create_engine, exc
        from sqlalchemy.pool import NullPool

        self.url = url = _prepare_url(self.resolve_path, self.raw_url, confined=self.confined)
        self.safe_url = url.render_as_string(hide_password=True)
        self.password = url.password or ""
        try:
            self.engine = create_engine(
                url,
                poolclass=NullPool,
                connect_args=_connect_args(url, self.params.connect_timeout),
            )
        except exc.NoSuchModuleError:
            raise _DbError(
                f"unsupported database URL scheme '{url.drivername}' (use sqlite, postgresql, mysql or mariadb)"
            ) from None
        except ImportError as e:
            raise _DbError(f"the driver for '{url.drivername}' is not installed ({e})") from None
        except exc.ArgumentError as e:
            raise _DbError(f"invalid database URL {self.safe_url}: {self._clean(str(e))}") from None
        try:
            self.conn = self.engine.connect()
            if self.rollback and url.get_backend_name() == "sqlite":
                # sqlite3 begins a transaction only before DML: DDL would commit at once.
                # BEGIN explicitly, so that everything is rolled back.
                self.conn.connection.dbapi_connection.isolation_level = None  # type: ignore[union-attr]
                self.conn.exec_driver_sql("BEGIN")
        except exc.SQLAlchemyError as e:
            raise _DbError(f"cannot connect to {self.safe_url}: {self._reason(e)}") from None
        if url.get_backend_name() in ("mysql", "mariadb"):
            # read/write_timeout bounded the handshake (a server that accepts and never
            # greets); a query may run as long as the workload's timeout allows.
            greeted: Any = self.conn.connection.dbapi_connection  # a pymysql Connection
            greeted._read_timeout = greeted._write_timeout = None

    def execute(self, query: str, values: Any) -> bool:
        from sqlalchemy import exc, text

        assert self.conn is not None
        conn = self.conn
        if _STREAMABLE.match(query) and not _WRITES.search(query):
            conn = conn.execution_options(
                stream_results=True, max_row_buffer=self.params.fetch_size
            )
        try:
            if isinstance(values, list) and not values:
                self.rows_affected = 0  # executemany of nothing
                return False
            result = conn.execute(text(query), values)
        except exc.SQLAlchemyError as e:
            self._rollback()
            raise _DbError(self._sql_failure(e, query)) from None
        if result.returns_rows:
            self.result = result
            self.columns = list(result.keys())
            return True
        self.rows_affected = (
            result.rowcount if result.rowcount is not None and result.rowcount >= 0 else None
        )
        result.close()
        self._commit_unless_transaction()
        return False

    def fetch(self) -> list[dict[str, Any]]:
        from sqlalchemy import exc

        assert self.result is not None
        try:
            rows = self.result.fetchmany(self.params.fetch_size)
        except exc.SQLAlchemyError as e:
            self._rollback()
            raise _DbError(self._sql_failure(e, None)) from None
        columns = self.columns
        return [
            dict(
                zip(columns, [v if type(v) in _PLAIN else to_jsonable(v) for v in row], strict=True)
            )
            for row in rows
        ]

    def finish_statement(self) -> None:
        if self.result is not None:
            self.result.close()
            self.result = None
        self._commit_unless_transaction()

    def commit(self) -> None:
        from sqlalchemy import exc

        if self.conn is None:
            return
        if self.rollback:  # gxo run --check: never committed
            self._rollback()
            return
        try:
            self.conn.commit()
        except exc.SQLAlchemyError as e:
            self._rollback()
            raise _DbError(f"commit failed on {self.safe_url}: {self._reason(e)}") from None

    def _commit_unless_transaction(self) -> None:
        if not self.params.transaction and not self.rollback:
            self.commit()

    def _rollback(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.rollback()

    def interrupt(self) -> None:
        """Ask the server to stop the running statement (in a thread of its own: the
        workload's database thread is the one blocked in the statement)."""
        conn, engine = self.conn, self.engine
        if conn is None or engine is None:
            return
        with contextlib.suppress(Exception):
            raw = conn.connection.dbapi_connection
            if engine.url.get_backend_name() in ("mysql", "mariadb"):
                # PyMySQL cannot cancel: kill the statement from a second connection.
                thread_id = int(raw.thread_id())  # type: ignore[union-attr]
                killer = engine.raw_connection()
                try:
                    killer.cursor().execute(f"KILL QUERY {thread_id}")
                finally:
                    killer.close()
                return
            for name in (
                "cancel",
                "interrupt",
            ):  # psycopg: cancel(); sqlite3: interrupt() (both thread-safe)
                method = getattr(raw, name, None)
                if callable(method):
                    method()
                    return

    def close(self) -> None:
        # Without commit, closing rolls back: a failed transaction leaves nothing behind.
        with contextlib.suppress(Exception):
            if self.result is not None:
                self.result.close()
        with contextlib.suppress(Exception):
            if self.conn is not None:
                self.conn.close()
        if self.engine is not None:
            self.engine.dispose()
        self.result = self.conn = self.engine = None

    # -- messages ------------------------------------------------------------------

    def _sql_failure(self, error: Exception, query: str | None) -> str:
        where = f" ({self.position})" if self.position else ""
        rolled = " (transaction rolled back)" if self.params.transaction else ""
        statement = (
            f" in: {_shorten(self.secrets.redact_str(query), self.secrets)}" if query else ""
        )
        return f"SQL error on {self.safe_url}{where}: {self._reason(error)}{statement}{rolled}"

    def _reason(self, error: Exception) -> str:
        orig = getattr(error, "orig", None) or error
        args: tuple[Any, ...] = getattr(orig, "args", ())
        if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
            text = f"{args[1]} (error {args[0]})"  # PyMySQL: (code, message)
        else:
            text = str(orig)
        return self._clean(text)

    def _mask_near(self, m: re.Match[str]) -> str:
        body, dots = m[2], ""
        if body.endswith("..."):  # MariaDB marks its cut with an ellipsis
            body, dots = body[:-3], "..."
        return m[1] + self.secrets.mask_cut_edge(body) + dots + m[3]

    def _clean(self, text: str) -> str:
        text = text.split("\n[SQL:")[0].split("\n(Background on this error")[0]
        # PostgreSQL adds "LINE 1: <query>" and a caret line: noise once joined on one line.
        lines = [ln.strip() for ln in text.strip().splitlines()]
        text = " ".join(
            ln for ln in lines if ln and not ln.startswith("LINE ") and set(ln) != {"^"}
        )
        if self.password:
            text = text.replace(self.password, "***")
        # MariaDB quotes the query from the error on, cut at 80 characters: `near '…' at line 1`.
        text = self.secrets.redact_str(text)
        text = _NEAR.sub(self._mask_near, text)
        return text or "unknown error"


def _prepare_url(resolve_path: Callable[[str], Path], raw: str, *, confined: bool = False) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        masked = _PASSWORD.sub(":***@", raw)
        raise _DbError(
            f"invalid database URL {masked!r}: expected e.g. sqlite:///app.db or postgresql://user@host/db"
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if not driver and backend in _DRIVERS:
        url = url.set(drivername=_DRIVERS[backend])
    if backend == "sqlite":
        db = url.database
        if db and db.startswith("file:") and confined:
            # A URI names its file its own way (file:x?mode=ro, file:///...): a confined
            # run takes plain file names only, which it can check.
            raise _DbError(
                "url: SQLite file: URIs are not allowed in a confined run "
                "(give a file name: sqlite:///app.db)"
            )
        if db and db != ":memory:" and not db.startswith("file:"):
            url = url.set(database=str(resolve_path(db)))
    return url


def _missing_sqlite_file(ctx: ModuleContext, url: str) -> Path | None:
    """Blocking: the file of a SQLite URL when it does not exist yet (None otherwise)."""
    match = _SQLITE_FILE.match(url)
    db = match["db"] if match else ""
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    try:
        path = ctx.resolve_path(db, param="url")
    except GxoError:
        return None  # the connection reports it
    return None if os.path.lexists(path) else path


def _remove_if_empty(path: Path) -> None:
    """Blocking: remove a SQLite file a rolled-back check created (still empty)."""
    with contextlib.suppress(OSError):
        if path.stat().st_size == 0:
            path.unlink()


def _connect_args(url: URL, timeout: float) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return {"timeout": timeout}  # how long to wait for a locked database
    if backend in ("mysql", "mariadb"):
        # PyMySQL's connect_timeout covers the TCP connect only, not the server's greeting.
        return {"connect_timeout": timeout, "read_timeout": timeout, "write_timeout": timeout}
    if backend == "postgresql":
        return {"connect_timeout": max(1, round(timeout))}
    return {}


_NEAR = re.compile(r"(near ')(.*?)(' at line \d+)")


def _queries(params: DatabaseQuery.Params) -> list[str]:
    if params.statements is not None:
        return [stmt.query for stmt in params.statements]
    return [params.query or ""]


def _changes(summary: dict[str, Any], query: str) -> bool:
    """Whether a statement's (rolled back) summary shows a change."""
    if "rows" in summary:  # rows returned: a write's RETURNING rows are its changes
        return bool(_WRITES.search(query)) and summary.get("rowcount", 0) > 0
    affected = summary.get("rows_affected")
    return affected is None or affected > 0  # None: DDL and the like


def _shorten(query: str, secrets: SecretRegistry | None = None, limit: int = 200) -> str:
    text = " ".join(query.split())
    if secrets is not None:  # redacted, then cut: no secret (or marker) cut in half
        return secrets.redact_excerpt(text, limit - 3, "...") if len(text) > limit else text
    return text if len(text) <= limit else text[: limit - 3] + "..."
