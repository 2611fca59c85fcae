"""``file:///DIR/GLOB?initial=true&debounce=200ms`` — one event per created or modified file.

``DIR`` is the longest leading part of the path without glob characters; ``GLOB`` (the
rest) is matched (fnmatch) against each changed file's path relative to ``DIR``. The
watch is recursive when ``GLOB`` contains ``/`` (``file:///in/**/*.json``).

Changes are debounced by watchfiles (``debounce``, default 200ms): a file written in
several steps, or created then modified, within the window is one event; a file gone
by the end of the window is none. A write that lands after the window (a slow
producer, a loaded machine) is a second, ``modified`` event: producers should write
aside and rename into the directory (one ``added`` event, never a half-written file).
``initial=true`` also emits one event per file that matches at start (``change: existing``).

``data`` = ``{path, change}`` (``change``: added | modified | existing); ``subject`` =
the path; ``id`` = ``PATH@MTIME_NS``, the same for a redelivery. There is no broker:
``ack()`` does nothing and ``nak(delay)`` re-queues the event in memory after ``delay``,
up to ``max_deliver`` deliveries in all (default 5; then it is logged and given up). A
file event is not kept across a daemon restart: ``initial=true`` is the way to pick up
what arrived meanwhile. The watcher holds at most ``max_concurrency`` events nobody
asked for yet, so it stops reading changes while the reconciler is not asking.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from gxo.config.durations import parse_duration
from gxo.daemon.sources.base import Event, SourceError, register_source

__all__ = ["FileSource"]

_PARAMS = {"initial", "debounce", "max_deliver"}
_GLOB_CHARS = set("*?[")
_STOP_WAIT = 5.0

log = logging.getLogger("gxo.daemon")


class _FileDelivery:
    __slots__ = ("_source", "event")

    def __init__(self, source: FileSource, event: Event) -> None:
        self._source = source
        self.event = event

    async def ack(self) -> None:
        return None  # nothing to confirm: the file is the event

    async def nak(self, delay: float | None = None) -> None:
        self._source._requeue(self.event, delay or 0.0)


def _split(path: str) -> tuple[Path, str]:
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if _GLOB_CHARS & set(part):
            return Path(*parts[:i]), "/".join(parts[i:])
    # No glob: a directory means every file in it, a file path means that file.
    whole = Path(path)
    if whole.is_dir():
        return whole, "*"
    return whole.parent, whole.name


class FileSource:
    def __init__(self, url: str, *, name: str, max_concurrency: int = 4, group: str | None = None):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URL must be file:///PATH (host {parts.netloc!r} given)")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError("file URL needs an absolute path: file:///DIR/GLOB")
        params: dict[str, str] = {}
        for key, values in parse_qs(parts.query, keep_blank_values=True).items():
            if key not in _PARAMS:
                known = ", ".join(sorted(_PARAMS))
                raise ValueError(f"unknown file URL parameter {key!r} (known: {known})")
            params[key] = values[-1]
        initial = params.get("initial", "false").lower()
        if initial not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"initial must be true or false, not {params['initial']!r}")
        self.initial = initial in ("true", "1", "yes")
        self.debounce = parse_duration(params.get("debounce", "200ms"))
        try:
            self.max_deliver = int(params.get("max_deliver", "5"))
        except ValueError:
            raise ValueError(
                f"max_deliver must be a number, not {params['max_deliver']!r}"
            ) from None
        if self.max_deliver < 1:
            raise ValueError("max_deliver must be at least 1")
        self._deliveries: dict[str, int] = {}  # event id → deliveries so far (nak'ed ones)
        self.url = url
        self.name = name
        self.directory, self.glob = _split(path)
        self.recursive = "/" in self.glob
        # Ready events, each with whether it holds a read-ahead slot: the watcher takes
        # a slot per event (at most max_concurrency unconsumed); redeliveries take none.
        self.queue: asyncio.Queue[tuple[Event, bool]] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max(1, max_concurrency))
        self._stop = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._closed = False

    # -- EventSource --------------------------------------------------------------------

    async def start(self) -> None:
        if not await asyncio.to_thread(self.directory.is_dir):
            raise SourceError(f"event source {self.url!r}: no directory {str(self.directory)!r}")
        self._watcher = asyncio.create_task(
            self._watch(), name=f"gxo-files:{self.directory}/{self.glob}"
        )
        # The watcher registers its inotify watches in its first step (before its first
        # await): let it run, so a file created after start() returns is seen.
        for _ in range(3):
            await asyncio.sleep(0)
        if self.initial:
            for path in await asyncio.to_thread(self._existing):
                event = await asyncio.to_thread(self._event, path, "existing")
                if event is not None:
                    await self._put(event)

    async def get(self) -> _FileDelivery:
        getter = asyncio.ensure_future(self.queue.get())
        watcher = self._watcher
        if watcher is None or watcher.done():
            return self._delivery(await getter)
        # A watcher that died (directory removed) must surface as an error, not a hang.
        try:
            done, _ = await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            getter.cancel()
            raise
        if getter in done:
            return self._delivery(getter.result())
        getter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await getter
        exc = watcher.exception() if not watcher.cancelled() else None
        raise SourceError(f"event source {self.url!r}: watching stopped: {exc or 'ended'}")

    def _delivery(self, item: tuple[Event, bool]) -> _FileDelivery:
        event, slot = item
        if slot:
            self._slots.release()
        return _FileDelivery(self, event)

    async def _put(self, event: Event) -> None:
        await self._slots.acquire()  # none free: stop reading changes until a get()
        self.queue.put_nowait((event, True))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()  # the watch thread sees it within one step (50 ms)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._watcher is not None:
            _, pending = await asyncio.wait([self._watcher], timeout=_STOP_WAIT)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    # -- internals ----------------------------------------------------------------------

    async def _watch(self) -> None:
        from watchfiles import Change, awatch

        kinds = {Change.added: "added", Change.modified: "modified"}
        async for changes in awatch(
            self.directory,
            debounce=max(1, int(self.debounce * 1000)),
            step=50,
            recursive=self.recursive,
            stop_event=self._stop,
            rust_timeout=0,
        ):
            batch: dict[str, str | None] = {}
            new_dirs: list[str] = []
            for change, path in changes:
                if change == Change.deleted:
                    batch[path] = None
                elif batch.get(path) is None or batch[path] == "modified":
                    # added wins over modified within one window
                    batch[path] = "added" if change == Change.added else kinds[change]
                if change == Change.added and self.recursive:
                    new_dirs.append(path)
            # A file written into a directory created a moment before can land before the
            # watch on that directory exists (inotify): list new directories once.
            for path in await asyncio.to_thread(self._files_under, new_dirs):
                batch.setdefault(path, "added")
            for path, kind in sorted(batch.items()):
                if kind is None or not self._matches(path):
                    continue
                event = await asyncio.to_thread(self._event, path, kind)
                if event is not None:
                    await self._put(event)

    def _matches(self, path: str) -> bool:
        try:
            rel = Path(path).relative_to(self.directory).as_posix()
        except ValueError:
            return False
        return fnmatch.fnmatchcase(rel, self.glob)

    @staticmethod
    def _files_under(paths: list[str]) -> list[str]:
        """The files below those of ``paths`` that are directories (none for files)."""
        found: list[str] = []
        for path in paths:
            if os.path.isdir(path) and not os.path.islink(path):
                for root, _, files in os.walk(path):
                    found.extend(os.path.join(root, f) for f in files)
        return found

    def _existing(self) -> list[str]:
        found: list[str] = []
        if self.recursive:
            for root, _, files in os.walk(self.directory):
                found.extend(os.path.join(root, f) for f in files)
        else:
            with os.scandir(self.directory) as entries:
                found.extend(e.path for e in entries if e.is_file())
        return sorted(p for p in found if self._matches(p))

    def _event(self, path: str, change: str) -> Event | None:
        try:
            st = os.stat(path)
        except OSError:
            return None  # gone again: nothing to process
        if not os.path.isfile(path):
            return None
        return Event(
            id=f"{path}@{st.st_mtime_ns}",
            source=self.url,
            subject=path,
            data={"path": path, "change": change},
            headers={},
        )

    def _requeue(self, event: Event, delay: float) -> None:
        if self._closed:
            return
        count = self._deliveries.get(event.id, 1) + 1
        if count > self.max_deliver:
            self._deliveries.pop(event.id, None)
            log.warning(
                "%s: event %s given up after %d deliveries (max_deliver)",
                self.url,
                event.id,
                self.max_deliver,
            )
            return
        if len(self._deliveries) > 10_000:  # a bound: ids of files long gone
            self._deliveries.clear()
        self._deliveries[event.id] = count
        loop = asyncio.get_running_loop()

        def put() -> None:
            self._timers.discard(handle)
            if not self._closed:
                self.queue.put_nowait((event, False))

        handle = loop.call_later(max(0.0, delay), put)
        self._timers.add(handle)


def _factory(url: str, **kwargs: Any) -> FileSource:
    return FileSource(url, **kwargs)


register_source("file", _factory)
