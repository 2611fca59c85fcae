"""The one hardened YAML text loader: playbooks, vars files, ``|from_yaml``, ``data:parse``.

Every YAML text GXO reads from a user goes through :func:`parse_yaml`, which
refuses what would exhaust the process instead of answering: alias bombs
("billion laughs": a short text that expands to billions of nodes), nesting
deeper than :data:`MAX_NESTING`, more than :data:`MAX_NODES` nodes, integers
too long to convert, and (:func:`read_text_file`) files that are not regular
files or are larger than :data:`MAX_FILE_BYTES`. Every refusal is a
:class:`~gxo.errors.PlaybookSyntaxError` naming the line and column.

Two parsers, one result. libyaml (PyYAML's C parser) composes the node graph
about 40× faster than ruamel.yaml's pure-Python round-trip parser; the nodes are
converted here with YAML 1.2 scalar rules, as ruamel's round-trip loader reads
them, positions taken from the node marks. Whatever that fast path does not
handle exactly (aliases, merge keys, explicit tags, timestamps, octal/hex/
underscored numbers, ``.inf``, duplicate or non-string keys, ``%YAML``
directives, anything libyaml rejects) sends the text to ruamel, which decides
and words every error — so the two parsers can only differ in speed.
"""

from __future__ import annotations

import functools
import gc
import os
import re
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gxo.errors import ConfigError, Location, PlaybookSyntaxError, PlaybookValidationError

__all__ = [
    "MAX_ALIAS_EXPANSION",
    "MAX_FILE_BYTES",
    "MAX_NESTING",
    "MAX_NODES",
    "PositionMap",
    "load_yaml_text",
    "parse_yaml",
    "read_text_file",
]

Path_ = tuple[Any, ...]
MAX_NODES = 1_000_000  # guards alias expansion ("billion laughs") and huge documents
MAX_ALIAS_EXPANSION = 100_000  # nodes a short document may reach through aliases
# Flow plus block levels. Deeper YAML is never a playbook, makes ruamel's scanner
# super-linear ('[' * 2000 scans for 10 s) and its composer recurse past the stack.
MAX_NESTING = 100
# A playbook of 10,000 workloads is ~2 MiB; a bigger file is a mistake (or /dev/zero).
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_INT_DIGITS = 4300  # CPython's own limit for int(str); longer raises ValueError


class PositionMap(dict[Path_, tuple[int, int]]):
    """Data path → (line, column), both 1-based."""

    def nearest(self, path: Iterable[Any]) -> tuple[int, int] | None:
        p = tuple(path)
        while True:
            if p in self:
                return self[p]
            if not p:
                return None
            p = p[:-1]


def read_text_file(
    path: str | Path,
    what: str,
    display: str | None = None,
    *,
    not_found: str = "{what} not found: {path}",
) -> str:
    """A UTF-8 text file's content, or a ConfigError saying why it cannot be read.

    Only regular files are read: a FIFO would block forever and ``/dev/zero``
    never ends. The file is opened non-blocking (opening a FIFO would already
    block) and checked with ``fstat`` on the open descriptor, so a symlink
    swapped after a check cannot sneak a device in.
    """
    display = display or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError(not_found.format(what=what, path=path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{what} path is a directory: {path}")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{what} is not a regular file ({_file_kind(mode)}): {path}")
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:  # the size may change between fstat and read
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{what} {path} is too large: more than {MAX_FILE_BYTES // (1024 * 1024)} MiB"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlaybookSyntaxError(
            f"{what} is not UTF-8 text: {exc.reason}", location=decode_error_location(exc, display)
        ) from None


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"


def decode_error_location(exc: UnicodeDecodeError, source: str) -> Location:
    """Line and column (in bytes) of the first byte that is not UTF-8."""
    data = bytes(exc.object)
    return Location(
        source, data.count(b"\n", 0, exc.start) + 1, exc.start - data.rfind(b"\n", 0, exc.start)
    )


def parse_yaml(
    text: str, source: str, *, string_keys: bool = True, all_documents: bool = False
) -> tuple[Any, PositionMap]:
    """Plain Python data (dict/list/str/int/float/bool/None) and its positions.

    ``string_keys`` makes a non-string mapping key an error (playbooks);
    otherwise scalar keys are kept (vars files, ``|from_yaml``). With
    ``all_documents`` the data is the list of the stream's documents and no
    positions are kept.
    """
    from gxo.config import _yamlfast

    # Parsing allocates hundreds of thousands of objects and frees none: the cyclic
    # GC would walk the growing heap again and again for nothing (a third of the
    # time of a 2,000-workload playbook). It runs again as soon as we are done.
    # (Only on the main thread: gc.disable is process-wide, data:parse parses in threads.)
    paused = gc.isenabled() and threading.current_thread() is threading.main_thread()
    if paused:
        gc.disable()
    try:
        try:
            return _yamlfast.parse(text, string_keys=string_keys, all_documents=all_documents)
        except _yamlfast.Fallback:
            pass
        return _parse_ruamel(text, source, string_keys=string_keys, all_documents=all_documents)
    finally:
        if paused:
            gc.enable()


def load_yaml_text(text: str, source: str = "<string>", *, all_documents: bool = False) -> Any:
    """Plain data of a YAML text that is not a playbook (no positions, scalar keys allowed)."""
    return parse_yaml(text, source, string_keys=False, all_documents=all_documents)[0]


# -- the reference parser: ruamel.yaml (round-trip), pure Python ---------------------


def _parse_ruamel(
    text: str, source: str, *, string_keys: bool, all_documents: bool
) -> tuple[Any, PositionMap]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    yaml = YAML(typ="rt")
    yaml.Scanner = _nesting_limited_scanner()
    yaml.allow_duplicate_keys = False
    try:
        docs = list(yaml.load_all(text)) if all_documents else [yaml.load(text)]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if problem.startswith("found duplicate key") and " with value " in problem:
            # ruamel quotes both whole values (a workload's params, credentials and all).
            problem = problem.split(" with value ", 1)[0] + " (a key may appear once in a mapping)"
        loc = Location(source, mark.line + 1, mark.column + 1) if mark else Location(source)
        raise PlaybookSyntaxError(f"YAML syntax error: {problem}", location=loc) from None
    except ReaderError as exc:  # a control character: ruamel reports only an offset
        pos = exc.position
        line, column = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise PlaybookSyntaxError(
            f"YAML syntax error: unacceptable character {char}: {exc.reason}",
            location=Location(source, line, column),
        ) from None
    except YAMLError as exc:
        raise PlaybookSyntaxError(f"YAML syntax error: {exc}", location=Location(source)) from None
    except RecursionError:
        raise PlaybookSyntaxError("YAML nesting is too deep", location=Location(source)) from None
    # ruamel's own asserts and "overlap in comment" NotImplementedError (its comment
    # handling, e.g. "| #" at the top, or "a: # c" above an indented value and a blank line)
    except (AssertionError, NotImplementedError):
        from gxo.config import _yamlfast

        found = _yamlfast.syntax_error(text)
        problem, line, column = found or ("this YAML cannot be read", 1, 1)
        raise PlaybookSyntaxError(
            f"YAML syntax error: {problem}", location=Location(source, line, column)
        ) from None
    except TypeError:  # "? [{a: b}]": ruamel cannot hash a key holding a mapping
        raise PlaybookSyntaxError(
            "YAML syntax error: a mapping key must be a scalar, not a list or mapping",
            location=_complex_key_location(text, source),
        ) from None
    except ValueError as exc:  # int("1" * 5000): CPython refuses to convert it
        raise PlaybookSyntaxError(
            f"YAML value cannot be read: {exc}", location=_long_number_location(text, source)
        ) from None
    positions = PositionMap()
    counter = [0]
    out = []
    # Without aliases a document has fewer nodes than characters; aliases may add a little.
    limit = min(MAX_NODES, max(MAX_ALIAS_EXPANSION, len(text)))
    sizes: dict[int, int] = {}
    try:
        for doc in docs:
            _expanded_size(doc, sizes, set(), source, limit)
            keep = PositionMap() if all_documents else positions
            out.append(_plain(doc, (), keep, counter, source, string_keys))
    except RecursionError:
        raise PlaybookSyntaxError("YAML nesting is too deep", location=Location(source)) from None
    return (out if all_documents else out[0]), positions


def _complex_key_location(text: str, source: str) -> Location:
    """Where the first mapping key that is a collection starts (composed again: error path)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    try:
        stack = list(YAML(typ="rt").compose_all(text))
    except Exception:  # it composed once already; anything else: no position
        return Location(source)
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if not isinstance(key, ScalarNode):
                    mark = key.start_mark
                    return Location(source, mark.line + 1, mark.column + 1)
                stack.append(value)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return Location(source)


def _long_number_location(text: str, source: str) -> Location:
    m = re.search(rf"[0-9_]{{{MAX_INT_DIGITS},}}", text)
    if m is None:
        return Location(source)
    pos = m.start()
    return Location(source, text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos))


def _expanded_size(
    node: Any, sizes: dict[int, int], active: set[int], source: str, limit: int
) -> int:
    """Node count after alias expansion, computed once per distinct node.

    Converting a "billion laughs" document node by node takes seconds before
    MAX_NODES stops it; this refuses it at once and names the line where the
    expansion exceeds ``limit`` (or where an alias contains itself).
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if not isinstance(node, CommentedMap | CommentedSeq):
        return 1
    key = id(node)
    if key in sizes:
        return sizes[key]
    where = (
        Location(source, node.lc.line + 1, node.lc.col + 1)
        if node.lc.line is not None
        else Location(source)
    )
    if key in active:
        raise PlaybookSyntaxError("recursive alias: a node contains itself", location=where)
    active.add(key)
    children = node.values() if isinstance(node, CommentedMap) else node
    total = 1 + sum(_expanded_size(child, sizes, active, source, limit) for child in children)
    active.discard(key)
    if total > limit:
        raise PlaybookSyntaxError(
            f"document too large (more than {limit} nodes after alias expansion)", location=where
        )
    sizes[key] = total
    return total


@functools.cache
def _nesting_limited_scanner() -> type:
    """ruamel's round-trip scanner, failing at the mark where nesting exceeds MAX_NESTING."""
    from ruamel.yaml.scanner import RoundTripScanner, ScannerError

    class NestingLimitedScanner(RoundTripScanner):
        def _check_depth(self) -> None:
            if self.flow_level + len(self.indents) > MAX_NESTING:
                mark = self.reader.get_mark()
                raise ScannerError(None, None, f"nesting deeper than {MAX_NESTING} levels", mark)

        def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
            super().fetch_flow_collection_start(TokenClass, to_push)
            self._check_depth()

        def add_indent(self, column: int) -> bool:
            added = super().add_indent(column)
            if added:
                self._check_depth()
            return added

    return NestingLimitedScanner


def _plain(
    node: Any,
    path: Path_,
    positions: PositionMap,
    counter: list[int],
    source: str,
    string_keys: bool = True,
) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarbool import ScalarBoolean

    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise PlaybookSyntaxError(
            f"document too large (more than {MAX_NODES} nodes after alias expansion)",
            location=Location(source),
        )
    if isinstance(node, CommentedMap):
        if path == () and node.lc.line is not None:
            positions[()] = (node.lc.line + 1, node.lc.col + 1)
        out: dict[Any, Any] = {}
        for key, value in node.items():
            try:
                kpos = node.lc.key(key)
            except (KeyError, TypeError, AttributeError):
                kpos = None
            plain_key = key if isinstance(key, str) else _plain_key(key)
            if not isinstance(plain_key, str) and (string_keys or plain_key is _NOT_SCALAR):
                loc = Location(source, kpos[0] + 1, kpos[1] + 1) if kpos else Location(source)
                wanted = "strings" if string_keys else "scalars"
                raise PlaybookValidationError(
                    f"mapping keys must be {wanted}, got {key!r}", location=loc
                )
            sub = (*path, plain_key)
            if kpos:
                positions[sub] = (kpos[0] + 1, kpos[1] + 1)
            out[str(plain_key) if isinstance(plain_key, str) else plain_key] = _plain(
                value, sub, positions, counter, source, string_keys
            )
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for i, value in enumerate(node):
            sub = (*path, i)
            try:
                ipos = node.lc.item(i)
                positions[sub] = (ipos[0] + 1, ipos[1] + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            out_list.append(_plain(value, sub, positions, counter, source, string_keys))
        return out_list
    # Scalars: ruamel's scalar subclasses become plain Python values. An anchored
    # boolean is a ScalarBoolean, an int subclass: keep it a bool.
    if isinstance(node, bool | ScalarBoolean) or node is None:
        return node if node is None else bool(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, dict):
        return {
            k: _plain(v, (*path, k), positions, counter, source, string_keys)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [
            _plain(v, (*path, i), positions, counter, source, string_keys)
            for i, v in enumerate(node)
        ]
    # dates, timestamps, binary: keep their text form
    return str(node)


_NOT_SCALAR = object()


def _plain_key(key: Any) -> Any:
    """A non-string key as a plain hashable scalar, or _NOT_SCALAR (``? [a, b]``)."""
    from ruamel.yaml.scalarbool import ScalarBoolean

    if key is None or isinstance(key, bool):
        return key
    if isinstance(key, ScalarBoolean):
        return bool(key)
    if isinstance(key, int):
        return int(key)
    if isinstance(key, float):
        return float(key)
    if isinstance(key, tuple | list | dict):
        return _NOT_SCALAR
    return str(key)
