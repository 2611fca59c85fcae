"""``gxo test``: discover, run (``-j N`` at a time), report, JUnit, ``--watch``.

Exit codes: 0 every selected test passed (or was skipped), 1 one failed,
2 usage error or no test file found/selected, 130 interrupted (not in watch
mode, where Ctrl-C is the normal way out and exits 0).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from gxo.errors import UsageError
from gxo.testing.discovery import PATTERN, TestFile, compile_selector, discover
from gxo.testing.execute import DESELECTED, Outcome, run_test_file
from gxo.testing.report import closing_line, format_outcome, tally

__all__ = ["main", "run_tests"]


async def run_tests(
    tests: Sequence[TestFile],
    *,
    selector: object = None,
    jobs: int = 1,
    verbose: bool = False,
    write: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Run ``tests``, ``jobs`` at a time; print each block in discovery order as soon as
    it and every block before it are done (parallel output never interleaves)."""
    semaphore = asyncio.Semaphore(max(1, jobs))
    done: dict[int, Outcome] = {}
    next_to_print = 0

    async def one(index: int, test: TestFile) -> None:
        nonlocal next_to_print
        async with semaphore:
            outcome = await run_test_file(test, selector)  # type: ignore[arg-type]
        done[index] = outcome
        while next_to_print in done:
            shown = done[next_to_print]
            if write is not None and shown.status != DESELECTED:
                write(format_outcome(shown, verbose=verbose))
            next_to_print += 1

    tasks = [
        asyncio.create_task(one(i, t), name=f"gxo-test:{t.display}") for i, t in enumerate(tests)
    ]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [done[i] for i in range(len(tests)) if done[i].status != DESELECTED]


def _writer(stream: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return write


def main(
    paths: list[Path],
    *,
    verbose: bool = False,
    run: str | None = None,
    junit: Path | None = None,
    watch: bool = False,
    jobs: int = 1,
    stdout: TextIO | None = None,
) -> int:
    """The body of ``gxo test``; returns the exit code. Raises UsageError on bad input."""
    selector = compile_selector(run)
    if jobs < 1:
        raise UsageError(f"-j/--jobs must be at least 1, got {jobs}")
    if junit is not None and junit.is_dir():
        raise UsageError(f"--junit: {junit} is a directory; give a file name such as report.xml")
    paths = paths or [Path(".")]
    tests = discover(paths)
    if not tests:
        raise UsageError(f"no test files ({PATTERN}) found in {', '.join(str(p) for p in paths)}")
    from gxo.modules.base import REGISTRY

    REGISTRY.load_builtins()  # import every module once, before tests load in threads
    write = _writer(stdout or sys.stdout)
    started = datetime.now(UTC)
    try:
        outcomes = asyncio.run(
            run_tests(tests, selector=selector, jobs=jobs, verbose=verbose, write=write)
        )
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 0 if watch else 130
    if not outcomes:
        raise UsageError(f"no test file matches --run {run!r} ({len(tests)} found)")
    write(closing_line(outcomes) + "\n")
    if junit is not None:
        from gxo.testing.junit import write_junit

        write_junit(outcomes, junit, started=started)
    code = 1 if tally(outcomes)[1] else 0
    if not watch:
        return code
    try:
        asyncio.run(
            _watch(paths, selector=selector, jobs=jobs, verbose=verbose, junit=junit, write=write)
        )
    except KeyboardInterrupt:
        pass
    write("\n")
    return 0


def watch_roots(paths: list[Path]) -> list[Path]:
    """Directories to watch: the given ones (a file's directory: editors replace files,
    which a watch on the file itself would lose) plus, inside the current directory,
    those holding files the tests reference (a test of ``examples/x.gxo.yaml``)."""
    from gxo.testing.watch import find_references

    roots: list[Path] = []

    def add(directory: Path) -> None:
        if not any(directory == r or r in directory.parents for r in roots):
            roots[:] = [r for r in roots if directory not in r.parents]
            roots.append(directory)

    for p in paths:
        resolved = p.resolve()
        add(resolved if resolved.is_dir() else resolved.parent)
    cwd = Path.cwd().resolve()
    for test in discover(paths):
        for ref in find_references(test.path):
            directory = ref if ref.is_dir() else ref.parent
            if directory == cwd or cwd in directory.parents:
                add(directory)
    return roots


async def _watch(
    paths: list[Path],
    *,
    selector: object,
    jobs: int,
    verbose: bool,
    junit: Path | None,
    write: Callable[[str], None],
) -> None:
    import watchfiles

    from gxo.testing.watch import Watcher

    async def rerun(tests: list[TestFile]) -> None:
        started = datetime.now(UTC)
        outcomes = await run_tests(
            tests, selector=selector, jobs=jobs, verbose=verbose, write=write
        )
        if not outcomes:
            write("no affected test file matches --run\n")
            return
        write(closing_line(outcomes) + "\n")
        if junit is not None:
            from gxo.testing.junit import write_junit

            write_junit(outcomes, junit, started=started)

    watcher = Watcher(paths, rerun, write, tty=sys.stdout.isatty())
    stop = asyncio.Event()
    try:
        # step: yield once the files are quiet for 50 ms (editors write in bursts);
        # debounce: never hold changes back longer than 1.6 s during a storm.
        changes = watchfiles.awatch(*watch_roots(paths), stop_event=stop, debounce=1600, step=50)
        await watcher.loop(changes)
    finally:
        stop.set()
