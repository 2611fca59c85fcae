"""The encrypted SQL state store: its key check, its key sources and its rekey.

What is encrypted (every value a playbook or a run produced) and what stays plaintext
(what the store queries, sorts or joins on: names, ids, times, the run status enum):

====================  ========================================  ==============================
table                 encrypted columns                         plaintext columns
====================  ========================================  ==============================
gxo_playbooks         source, path, checksum, variables         name, applied_at
gxo_statuses          data                                      playbook, workload
gxo_runs              reason, report                            id, run_id, playbook, workload,
                                                                status, started_at, ended_at
gxo_results           value                                     playbook, key
gxo_meta              key_check (the marker below)              schema_version
gxo_fires, leases     (nothing: fleet coordination keys)        all
====================  ========================================  ==============================

The ``key_check`` row of ``gxo_meta`` holds a known text sealed with the store's key.
Present: the store is encrypted, and opening it checks the key before any row is read
(a wrong key is named as such, never reported row by row). A store opened with a key
and no marker is new or plaintext: its rows (if any) are encrypted in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, create_engine, exc, select, text, update
from sqlalchemy.pool import StaticPool

from gxo.state._sql_schema import (
    StateError,
    meta_table,
    parse_url,
    pauses_table,
    playbooks_table,
    redacted,
    results_table,
    runs_table,
    statuses_table,
)
from gxo.state.crypto import (
    KEY_HINT,
    AesGcmCodec,
    PlainCodec,
    StateCodec,
    default_key_path,
    envelope_key_id,
    generate_key,
    key_from_command,
    read_key_file,
    write_key_file,
)

if TYPE_CHECKING:
    from gxo.state.sql import SqlState

__all__ = [
    "CELLS",
    "check_store_key",
    "open_encrypted_state",
    "rekey_state",
    "resolve_codec",
    "store_is_encrypted",
    "verify_store",
]

log = logging.getLogger("gxo.state")

KEY_CHECK = "key_check"
KEY_CHECK_TEXT = "gxo state key check v1"


@dataclass(frozen=True)
class Cells:
    """The encrypted columns of one table and the columns naming its row."""

    table: Table
    name: str  # the table's name in associated data and errors
    keys: tuple[str, ...]
    values: tuple[str, ...]


CELLS = (
    Cells(playbooks_table, "playbooks", ("name",), ("source", "path", "checksum", "variables")),
    Cells(statuses_table, "statuses", ("playbook", "workload"), ("data",)),
    Cells(runs_table, "runs", ("run_id",), ("reason", "report")),
    Cells(results_table, "results", ("playbook", "key"), ("value",)),
    Cells(pauses_table, "pauses", ("id",), ("prompt", "schema", "payload", "reason")),
)


def _seal_marker(codec: StateCodec) -> str:
    return codec.seal(KEY_CHECK_TEXT, "meta", KEY_CHECK, column="value")


def _marker(conn: Connection) -> str | None:
    return conn.execute(select(meta_table.c.value).where(meta_table.c.key == KEY_CHECK)).scalar()


def _check_marker(marker: str, codec: StateCodec, url: str, hint: str = KEY_HINT) -> None:
    kid = envelope_key_id(marker) or "?"
    if not codec.encrypted:
        raise StateError(f"state database {url} is encrypted (key {kid}): {hint}")
    if kid != codec.kid:
        raise StateError(
            f"state database {url} is encrypted with key {kid}, not with the key given "
            f"({codec.kid}): {hint}"
        )
    if codec.open(marker, "meta", KEY_CHECK, column="value") != KEY_CHECK_TEXT:
        raise StateError(f"state database {url}: the key check row is corrupt")


def _rows(conn: Connection, cells: Cells) -> Iterator[Any]:
    t = cells.table
    columns = [t.c[k] for k in cells.keys] + [t.c[v] for v in cells.values]
    yield from conn.execute(select(*columns))


def _encrypted_cells(conn: Connection) -> int:
    """How many values of the store look encrypted (0 in a plaintext store)."""
    found = 0
    for cells in CELLS:
        for row in _rows(conn, cells):
            found += sum(
                1
                for v in row[len(cells.keys) :]
                if isinstance(v, str) and envelope_key_id(v) is not None
            )
    return found


def _reseal(conn: Connection, old: StateCodec, new: StateCodec) -> int:
    """Every value opened with ``old`` and sealed again with ``new``; the number of values."""
    count = 0
    for cells in CELLS:
        t = cells.table
        n = len(cells.keys)
        rows = list(_rows(conn, cells))
        for row in rows:
            keys = tuple(str(k) for k in row[:n])
            changes = {}
            for column, value in zip(cells.values, row[n:], strict=True):
                plain = old.open(value, cells.name, *keys, column=column)
                if plain is not None:
                    changes[column] = new.seal(plain, cells.name, *keys, column=column)
                    count += 1
            if changes:
                where = [t.c[k] == v for k, v in zip(cells.keys, row[:n], strict=True)]
                conn.execute(update(t).where(*where).values(**changes))
    return count


def _plaintexts(conn: Connection, codec: StateCodec) -> dict[tuple[str, ...], str | None]:
    """Every value of the store, opened: raises a StateError naming the first bad row."""
    out: dict[tuple[str, ...], str | None] = {}
    for cells in CELLS:
        n = len(cells.keys)
        for row in _rows(conn, cells):
            keys = tuple(str(k) for k in row[:n])
            for column, value in zip(cells.values, row[n:], strict=True):
                out[(cells.name, *keys, column)] = codec.open(
                    value, cells.name, *keys, column=column
                )
    return out


def check_store_key(state: SqlState) -> None:
    """On open: the key check (see the module docstring); a plaintext store opened with a
    key is encrypted in place, in one transaction."""
    codec = state._codec
    with state._write() as conn:
        marker = _marker(conn)
        if marker is None and codec.encrypted and not state._sqlite:
            # Fleet members opening a new store at once: one of them writes the marker.
            conn.execute(text("LOCK TABLE gxo_meta IN SHARE ROW EXCLUSIVE MODE"))
            marker = _marker(conn)
        if marker is not None:
            _check_marker(marker, codec, state.url)
            return
        if not codec.encrypted:
            return
        if _encrypted_cells(conn):
            raise StateError(
                f"state database {state.url} holds encrypted values but no key check row: "
                "the store was altered (restore it from a backup)"
            )
        count = _reseal(conn, PlainCodec(), codec)
        conn.execute(meta_table.insert().values(key=KEY_CHECK, value=_seal_marker(codec)))
    if count:
        log.warning(
            "state database %s was not encrypted: its %d values are now (key %s)",
            state.url,
            count,
            codec.kid,
        )


def verify_store(state: SqlState) -> int:
    """Open every encrypted value of the store; the number of values. A value that does
    not authenticate raises a StateError naming its row."""
    with state._read() as conn:
        return len(_plaintexts(conn, state._codec))


# -- key sources ------------------------------------------------------------------------


def store_is_encrypted(url: str) -> bool:
    """Whether the store at ``url`` has a key check row (False when it does not exist)."""
    raw = parse_url(url)
    if raw.get_backend_name() == "sqlite":
        database = raw.database or ""
        if database in ("", ":memory:") or not Path(database).expanduser().exists():
            return False
    engine = create_engine(raw) if raw.get_backend_name() != "sqlite" else None
    try:
        if engine is None:
            path = Path(raw.database or "").expanduser()
            try:
                probe = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            except sqlite3.Error as e:
                raise StateError(f"state database {redacted(raw)}: {e}") from None
            try:
                row = probe.execute(
                    "SELECT value FROM gxo_meta WHERE key = ?", (KEY_CHECK,)
                ).fetchone()
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):
                    return False
                raise StateError(f"state database {redacted(raw)}: {e}") from None
            except sqlite3.Error as e:
                raise StateError(f"state database {redacted(raw)}: {e}") from None
            finally:
                probe.close()
            return row is not None
        with engine.connect() as conn:
            if not engine.dialect.has_table(conn, "gxo_meta"):
                return False
            return _marker(conn) is not None
    except exc.SQLAlchemyError as e:
        detail = str(getattr(e, "orig", None) or e).strip().splitlines()
        raise StateError(f"state database {redacted(raw)}: {detail[0] if detail else e}") from None
    finally:
        if engine is not None:
            engine.dispose()


def resolve_codec(url: str, key_file: str | None, key_cmd: str | None) -> AesGcmCodec:
    """The codec of the store at ``url`` from ``--state-key-file``, ``--state-key-cmd`` or
    the default ``~/.gxo/state.key`` (created 0600 for a store that is not encrypted yet;
    never for an encrypted one, which would then be unreadable)."""
    if key_file is not None and key_cmd is not None:
        raise StateError("use --state-key-file or --state-key-cmd, not both")
    if key_file is not None and not key_file.strip():
        raise StateError("--state-key-file: empty path")
    if key_cmd is not None and not key_cmd.strip():
        raise StateError("--state-key-cmd: empty command")
    if key_file:
        return AesGcmCodec(read_key_file(key_file))
    if key_cmd:
        return AesGcmCodec(key_from_command(key_cmd))
    path = default_key_path()
    if path.exists() or path.is_symlink():
        return AesGcmCodec(read_key_file(path, "the default state key"))
    if store_is_encrypted(url):
        raise StateError(
            f"state database {redacted(parse_url(url))} is encrypted and the default key "
            f"{path} does not exist: {KEY_HINT} (a new key is never created for an "
            "encrypted store)"
        )
    try:
        write_key_file(path, generate_key())
        log.warning(
            "created the state key %s (mode 0600): keep a copy apart from the state, "
            "or the state cannot be read without it",
            path,
        )
    except StateError:
        if not path.exists():  # another process created it first: use that one
            raise
    return AesGcmCodec(read_key_file(path, "the default state key"))


SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite_file(url: str) -> None:
    """Refuse a SQLite state file that is not one. SQLite itself would take a file shorter
    than a page (a store truncated to a few bytes) for an empty database and overwrite it:
    a silent reset. An empty file is a new store (gxo creates it empty before SQLite)."""
    raw = parse_url(url)
    database = raw.database or ""
    if raw.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return
    path = Path(database).expanduser()
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as e:
        raise StateError(f"state database {redacted(raw)}: {e.strerror or e}") from None
    if head and head != SQLITE_HEADER:
        size = path.stat().st_size
        raise StateError(
            f"state database {redacted(raw)}: not a SQLite database ({size} bytes without "
            "the SQLite header: truncated or overwritten? restore it from a backup)"
        )


def open_encrypted_state(
    url: str, key_file: str | None, key_cmd: str | None, history_limit: int = 100
) -> SqlState:
    """``SqlState`` with its key resolved, checked, and every value verified once."""
    from gxo.state.sql import SqlState

    check_sqlite_file(url)
    codec = resolve_codec(url, key_file, key_cmd)
    state = SqlState(url, history_limit, codec=codec)
    try:
        count = verify_store(state)
    except BaseException:
        state.close()
        raise
    log.info("state %s: %d encrypted values verified (key %s)", state.url, count, codec.kid)
    return state


# -- rekey ------------------------------------------------------------------------------


def rekey_state(url: str, old: AesGcmCodec, new: AesGcmCodec) -> int:
    """Encrypt the (stopped daemon's) store again under ``new``; the number of values.

    SQLite: the store is copied beside itself, re-encrypted and verified in the copy,
    fsync'd and renamed over the original (then the directory fsync'd). PostgreSQL: one
    transaction. Killed at any point, the store is whole under exactly one of the keys.
    """
    raw = parse_url(url)
    if old.kid == new.kid:
        raise StateError(f"the old and the new key are the same key ({old.kid})")
    if raw.get_backend_name() == "sqlite":
        count = _rekey_sqlite(raw, old, new)
    else:
        count = _rekey_postgresql(raw, old, new)
    from gxo.state.sql import SqlState

    # After the swap, from scratch: the store as the daemon will open it.
    with SqlState(url, codec=new) as state:
        verified = verify_store(state)
    if verified != count:
        raise StateError(f"rekey: {count} values written but {verified} verified")
    return count


def _reencrypt(conn: Connection, old: AesGcmCodec, new: AesGcmCodec, url: str) -> int:
    where = f"state database {url}"
    marker = _marker(conn)
    if marker is None:
        raise StateError(f"{where} is not encrypted (no key check row): nothing to rekey")
    _check_marker(marker, old, url, "--old-key-file must be the key the store has now")
    before = _plaintexts(conn, old)
    count = _reseal(conn, old, new)
    conn.execute(
        update(meta_table).where(meta_table.c.key == KEY_CHECK).values(value=_seal_marker(new))
    )
    _check_marker(_marker(conn) or "", new, url)
    if _plaintexts(conn, new) != before:
        raise StateError(f"{where}: values differ after re-encryption; nothing was changed")
    return count


def _rekey_sqlite(raw: Any, old: AesGcmCodec, new: AesGcmCodec) -> int:
    database = raw.database or ""
    if database in ("", ":memory:"):
        raise StateError("rekey-state needs a SQLite file, not an in-memory database")
    path = Path(database).expanduser().resolve()
    where = f"state database {redacted(raw)}"
    if not path.is_file():
        raise StateError(f"{where}: no such file")
    temp = path.with_name(path.name + ".rekey")
    for leftover in (temp, *(Path(f"{temp}{s}") for s in ("-journal", "-wal", "-shm"))):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()  # an earlier rekey killed before its rename
    src = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        try:
            # Out of WAL: folds the -wal into the file and deletes it, so no -wal of the
            # old file can ever be replayed into the new one. Fails if a daemon has it open.
            mode = src.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
            version = src.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.OperationalError as e:
            raise StateError(
                f"{where} is in use ({e}): stop the daemon first, rekey-state is offline"
            ) from None
        except sqlite3.DatabaseError as e:
            raise StateError(f"{where}: {e}") from None
        if mode != "delete":
            raise StateError(f"{where}: cannot leave journal mode {mode!r}")
        fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        # The driver's own transactions (not autocommit): SQLAlchemy's begin() then spans
        # the whole re-encryption, one commit instead of one fsync per row.
        dst = sqlite3.connect(temp)
        try:
            src.backup(dst)  # one step: a consistent copy
            try:
                # Held until the rename: nothing writes the old file meanwhile; and
                # nothing did since the copy (a daemon started anyway?).
                src.execute("BEGIN EXCLUSIVE")
                src.execute("SELECT count(*) FROM sqlite_master").fetchone()
                changed = src.execute("PRAGMA data_version").fetchone()[0] != version
            except sqlite3.OperationalError as e:
                raise StateError(
                    f"{where} is in use ({e}): stop the daemon first, rekey-state is offline"
                ) from None
            if changed:
                raise StateError(f"{where} changed during the rekey: stop the daemon first")
            dst.execute("PRAGMA journal_mode=DELETE")
            engine = create_engine("sqlite://", creator=lambda: dst, poolclass=StaticPool)
            try:
                with engine.begin() as conn:
                    count = _reencrypt(conn, old, new, redacted(raw))
                with engine.connect() as conn:
                    healthy = conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            except exc.SQLAlchemyError as e:
                raise StateError(f"{where}: {getattr(e, 'orig', None) or e}") from None
            finally:
                engine.dispose()  # closes dst
            if not healthy:
                raise StateError(f"{where}: the re-encrypted copy fails its integrity check")
        finally:
            dst.close()
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for stale in ("-wal", "-journal"):
            if Path(f"{path}{stale}").exists():
                raise StateError(f"{where}: {path.name}{stale} exists; not renaming over it")
        os.replace(temp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        src.close()  # the old file's lock (its inode is gone once renamed over)
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return count


def _rekey_postgresql(raw: Any, old: AesGcmCodec, new: AesGcmCodec) -> int:
    where = f"state database {redacted(raw)}"
    engine = create_engine(raw)
    tables = ", ".join(c.table.name for c in CELLS) + ", gxo_meta"
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            try:
                conn.execute(text(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE"))
            except exc.OperationalError as e:
                raise StateError(
                    f"{where} is in use ({getattr(e, 'orig', None) or e}): stop the daemons "
                    "first, rekey-state is offline"
                ) from None
            return _reencrypt(conn, old, new, redacted(raw))
    except exc.SQLAlchemyError as e:
        detail = str(getattr(e, "orig", None) or e).strip().splitlines()
        raise StateError(f"{where}: {detail[0] if detail else e}") from None
    finally:
        engine.dispose()
