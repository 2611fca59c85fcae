"""``file://`` event source on a real directory (inotify through watchfiles)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gxo.daemon.sources.base import SourceError, open_source
from gxo.daemon.sources.files import FileSource


async def next_event(source: FileSource, timeout: float = 10.0):
    return await asyncio.wait_for(source.get(), timeout)


async def test_created_file_is_one_event_existing_only_with_initial(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "skip.txt").write_text("x")
    source = open_source(f"file://{tmp_path}/*.json?debounce=100ms", name="w")
    assert isinstance(source, FileSource)
    await source.start()
    try:
        new = tmp_path / "new.json"
        # Written in several steps within the debounce window: one event.
        with new.open("w") as f:
            f.write("{")
            f.flush()
            f.write("}")
        (tmp_path / "other.txt").write_text("no match")
        delivery = await next_event(source)
        assert delivery.event.data == {"path": str(new), "change": "added"}
        assert delivery.event.subject == str(new)
        assert delivery.event.id.startswith(f"{new}@")
        await delivery.ack()
        with pytest.raises(TimeoutError):  # old.json is not reported without initial
            await asyncio.wait_for(source.get(), 0.5)
        # nak: the same event (same id) comes back after the delay.
        new.write_text('{"v": 2}')
        again = await next_event(source)
        assert again.event.data["change"] == "modified"
        await again.nak(0.05)
        redelivered = await next_event(source)
        assert redelivered.event.id == again.event.id
    finally:
        await source.close()
        await source.close()  # idempotent


async def test_initial_lists_matching_files_recursively(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.csv").write_text("1")
    (tmp_path / "y.csv").write_text("2")
    (tmp_path / "z.txt").write_text("3")
    source = open_source(f"file://{tmp_path}/**/*.csv?initial=true", name="w")
    await source.start()
    try:
        first = await next_event(source)
        assert first.event.data == {"path": str(tmp_path / "a" / "x.csv"), "change": "existing"}
        with pytest.raises(TimeoutError):  # y.csv is not under a subdirectory: **/ needs one
            await asyncio.wait_for(source.get(), 0.3)
        (tmp_path / "a" / "b").mkdir()
        (tmp_path / "a" / "b" / "deep.csv").write_text("4")
        deep = await next_event(source)
        assert deep.event.data["path"] == str(tmp_path / "a" / "b" / "deep.csv")
    finally:
        await source.close()


async def test_read_ahead_is_bounded(tmp_path: Path) -> None:
    source = open_source(f"file://{tmp_path}/*?debounce=50ms", name="w", max_concurrency=2)
    await source.start()
    try:
        for i in range(6):
            (tmp_path / f"f{i}").write_text(str(i))
        await asyncio.sleep(1.0)
        assert source.queue.qsize() == 2  # the watcher waits for get()
        got = [(await next_event(source)).event.data["path"] for _ in range(6)]
        assert sorted(got) == [str(tmp_path / f"f{i}") for i in range(6)]
    finally:
        await source.close()


async def test_nak_redelivers_up_to_max_deliver(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    source = open_source(f"file://{tmp_path}/*?initial=true&max_deliver=3", name="w")
    await source.start()
    try:
        ids = []
        for _ in range(3):  # the first delivery and two redeliveries
            delivery = await next_event(source)
            ids.append(delivery.event.id)
            await delivery.nak(0.01)
        assert len(set(ids)) == 1
        with pytest.raises(TimeoutError):  # given up after max_deliver
            await asyncio.wait_for(source.get(), 0.3)
    finally:
        await source.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file://host/x/*", "file:///PATH"),
        ("file:///x/*?inital=true", "unknown file URL parameter 'inital'"),
        ("file:///x/*?initial=maybe", "initial must be true or false"),
        ("file:///x/*?max_deliver=0", "max_deliver must be at least 1"),
    ],
)
def test_bad_urls_are_clear_errors(url: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(url, name="w")


async def test_missing_directory_fails_start(tmp_path: Path) -> None:
    source = open_source(f"file://{tmp_path}/nope/*", name="w")
    with pytest.raises(SourceError, match="no directory"):
        await source.start()
    await source.close()


async def test_files_in_a_new_directory_tree_are_all_seen(tmp_path: Path) -> None:
    """Files written into directories created a moment before (before inotify watches them)
    are found by listing each new directory."""
    source = open_source(f"file://{tmp_path}/**/*.csv", name="w")
    await source.start()
    try:
        expected = set()
        for depth in ("n1", "n1/n2", "n1/n2/n3"):
            (tmp_path / depth).mkdir()
            for i in range(3):
                path = tmp_path / depth / f"f{i}.csv"
                path.write_text(str(i))
                expected.add(str(path))
        seen = set()
        while seen != expected:
            delivery = await next_event(source)
            seen.add(delivery.event.data["path"])
            await delivery.ack()
        assert seen == expected
    finally:
        await source.close()
