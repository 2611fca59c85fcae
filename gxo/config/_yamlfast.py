"""The fast path of :mod:`gxo.config.yamlsafe`: libyaml parses, we build the data.

libyaml (through PyYAML's ``CParser``) yields the event stream with marks; one
loop turns the events into plain data and positions under YAML 1.2 rules, the
way ruamel's round-trip loader reads them. Anything this reader is not *sure* to
read exactly as ruamel does raises :class:`Fallback`, and the caller parses the
text with ruamel instead, which also words every error. libyaml caps nesting at
1,000 levels itself and the reader keeps its own stack, so even a hostile text
cannot overflow the interpreter's stack here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gxo.config.yamlsafe import PositionMap

__all__ = ["Fallback", "available", "parse", "syntax_error"]

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_PLAIN = "?"  # our marker for "untagged plain scalar: resolve it by its text"

# First characters of a plain scalar that can be something other than a string
# under YAML 1.2 (ruamel's implicit resolvers); any other plain scalar is a string.
_SPECIAL_FIRST = frozenset("-+0123456789.tTfF~nN<=")
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]{0,99})")
_FLOAT = re.compile(r"[-+]?(?:[0-9][0-9]*\.[0-9]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9]*[eE][-+]?[0-9]+)")
# ruamel's YAML 1.2 int/float/timestamp patterns, less what is handled above: a
# match means "not a string, and not simple" → let ruamel read it.
_OTHER_NUMBER_OR_DATE = re.compile(
    r"""[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?[0-9_]+|[-+]?0x[0-9a-fA-F_]+
    |[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9]
     (?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?
    |<<|=""",
    re.X,
)
# (A regex scan of a 2,000-workload text costs ~1 µs a workload; `in` and isascii()
# are memchr-fast, so the regex only runs on non-ASCII text.)
_ODD_CHARACTER = re.compile("[\t\x85\u2028\u2029]")
# "&name" where a node starts (line start, after ": ", "- ", "[", "{", ","): an anchor.
# "a && b" or "?x=1&y=2" inside a scalar does not match.
_ANCHOR = re.compile(r"(?:^|[:\-?,\[{])[ ]*&", re.M)
# Deeper documents go to ruamel, which applies the nesting limit with its wording;
# the node depth bounds ruamel's scanner level (flow + block), which it limits to 100.
_MAX_DEPTH = 90
_MAX_NODES = 1_000_000


class Fallback(Exception):
    """This text is for the reference parser (ruamel) to read."""


def _loader_class() -> type | None:
    try:
        from yaml._yaml import CParser
        from yaml.nodes import ScalarNode, SequenceNode
    except ImportError:  # PyYAML without libyaml: everything takes the reference path
        return None

    class _Composer(CParser):  # type: ignore[misc]
        """CParser composing nodes: only syntax_error's second opinion uses it (the
        composer also reports what the event stream alone does not, e.g. an
        undefined alias)."""

        # CParser calls these around every collection (PyYAML's path resolvers): no-ops.
        def descend_resolver(self, parent: Any, index: Any) -> None:
            pass

        def ascend_resolver(self) -> None:
            pass

        def resolve(self, kind: type, value: Any, implicit: Any) -> str:
            # Called for untagged nodes and for the non-specific tag "!", whose
            # reading we leave to ruamel ("!" matches no tag the converter knows).
            if kind is ScalarNode:
                if implicit[0]:
                    return _PLAIN
                return _STR if implicit[1] else "!"
            if not implicit:
                return "!"
            return _SEQ if kind is SequenceNode else _MAP

    return _Composer


_COMPOSER = _loader_class()
_PARSER: Any = None
if _COMPOSER is not None:
    import yaml._yaml

    _PARSER = yaml._yaml.CParser


def available() -> bool:
    return _COMPOSER is not None


def parse(text: str, *, string_keys: bool, all_documents: bool) -> tuple[Any, PositionMap]:
    """(data, positions) as the reference parser would return them, or :class:`Fallback`."""
    from gxo.config.yamlsafe import PositionMap

    if (
        _COMPOSER is None
        or text.startswith("%")
        or "\n%" in text
        or "\t" in text
        or (not text.isascii() and _ODD_CHARACTER.search(text))
        or ("&" in text and _ANCHOR.search(text))
    ):
        # No libyaml; a %YAML/%TAG directive (ruamel honours versions); a tab, which
        # libyaml accepts in places where ruamel refuses it ("a:<TAB>b"); NEL and the
        # Unicode line/paragraph separators, line breaks in YAML 1.1 only; an anchor
        # (ruamel has its own readings of anchored scalars, e.g. "&a:" is not {None: None}).
        raise Fallback
    try:
        return _build(text, string_keys, all_documents, PositionMap())
    except Fallback:
        raise
    except Exception:  # libyaml's error: ruamel reports it (or reads what libyaml cannot)
        raise Fallback from None


def _build(text: str, string_keys: bool, all_documents: bool, positions: Any) -> Any:
    """Data and positions in one loop over libyaml's events, with no node objects.

    Composing nodes first cost as much again as reading the events: a Python node
    object (two marks, a tag resolved by a Python call) per scalar, then a second
    walk over them. Here a stack holds the open collections; a scalar goes straight
    into its parent. ``expect_key`` alternates in a mapping: key, value, key...
    """
    from yaml.events import (
        DocumentEndEvent,
        DocumentStartEvent,
        MappingEndEvent,
        MappingStartEvent,
        ScalarEvent,
        SequenceEndEvent,
        SequenceStartEvent,
        StreamEndEvent,
    )

    keep = None if all_documents else positions
    special = _SPECIAL_FIRST
    resolve = _resolve_plain
    parser = _PARSER(text)
    get = parser.get_event
    documents: list[Any] = []
    try:
        get()  # StreamStartEvent
        while True:
            event = get()
            if event.__class__ is StreamEndEvent:
                break
            if event.__class__ is not DocumentStartEvent or (documents and not all_documents):
                raise Fallback  # (a second document where one is expected: ruamel's error)
            stack: list[Any] = []
            cur: Any = None
            path: tuple[Any, ...] = ()
            key: Any = None
            is_map = expect_key = False
            root: Any = None
            nodes = 0
            while True:
                event = get()
                cls = event.__class__
                if cls is ScalarEvent:
                    if event.anchor is not None or event.tag is not None:
                        raise Fallback  # anchors and explicit tags: ruamel's reading
                    v = event.value
                    if event.implicit[0] and (not v or v[0] in special):
                        v = resolve(v)  # plain, and maybe not a string (YAML 1.2 core)
                        if (
                            is_map
                            and expect_key
                            and (v == "<<" or (string_keys and not isinstance(v, str)))
                        ):
                            raise Fallback  # a merge key; or ruamel's "keys must be strings"
                    if is_map:
                        if expect_key:
                            if v in cur:
                                raise Fallback  # a duplicate key: ruamel's error
                            key = v
                            if keep is not None:
                                mark = event.start_mark
                                keep[(*path, v)] = (mark.line + 1, mark.column + 1)
                            expect_key = False
                        else:
                            cur[key] = v
                            expect_key = True
                    elif cur is not None:
                        if keep is not None:
                            mark = event.start_mark
                            keep[(*path, len(cur))] = (mark.line + 1, mark.column + 1)
                        cur.append(v)
                    else:
                        root = v  # a document that is one scalar
                        get()  # DocumentEndEvent
                        break
                    continue
                if cls is MappingStartEvent or cls is SequenceStartEvent:
                    if event.anchor is not None or event.tag is not None:
                        raise Fallback
                    nodes += 1
                    if len(stack) >= _MAX_DEPTH or nodes > _MAX_NODES:
                        raise Fallback  # ruamel refuses it, with its wording and location
                    new: Any = {} if cls is MappingStartEvent else []
                    if is_map:
                        if expect_key:
                            raise Fallback  # a complex key
                        cur[key] = new
                        sub = (*path, key)
                        expect_key = True
                    elif cur is not None:
                        sub = (*path, len(cur))
                        if keep is not None:
                            mark = event.start_mark
                            keep[sub] = (mark.line + 1, mark.column + 1)
                        cur.append(new)
                    else:
                        root = new
                        sub = ()
                        if keep is not None and cls is MappingStartEvent:
                            mark = event.start_mark
                            keep[()] = (mark.line + 1, mark.column + 1)
                    stack.append((cur, path, key, is_map))
                    cur, path, is_map, expect_key = new, sub, cls is MappingStartEvent, True
                    continue
                if cls is MappingEndEvent or cls is SequenceEndEvent:
                    cur, path, key, is_map = stack.pop()
                    expect_key = True  # the collection was a value (or an item): a key is next
                    if not stack:
                        get()  # DocumentEndEvent
                        break
                    continue
                if cls is DocumentEndEvent and cur is None:
                    break  # an empty document
                raise Fallback  # an alias (ruamel caps the expansion), or anything unforeseen
            documents.append(root)
    finally:
        parser.dispose()
    if all_documents:
        return documents, positions
    return (documents[0] if documents else None), positions


def syntax_error(text: str) -> tuple[str, int, int] | None:
    """libyaml's (problem, line, column) for a text, if it finds one: the second opinion
    used when ruamel fails internally instead of reporting a syntax error."""
    if _COMPOSER is None:
        return None
    composer = _COMPOSER(text)
    try:
        while composer.check_node():
            composer.get_node()
    except Exception as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            problem = getattr(exc, "problem", None) or "invalid YAML"
            return problem, mark.line + 1, mark.column + 1
    finally:
        composer.dispose()
    return None


# Plain scalars that need the resolver repeat a lot in a playbook ("3", "30s", "true",
# "2.0"): their readings are kept (immutable values; a Fallback is never kept).
_RESOLVED: dict[str, Any] = {}
_RESOLVED_MAX = 4096


def _resolve_plain(value: str) -> Any:
    """A plain scalar's value under YAML 1.2 (ruamel's resolvers), or Fallback if unsure."""
    try:
        return _RESOLVED[value]
    except KeyError:
        pass
    result = _resolve_text(value)
    if len(_RESOLVED) < _RESOLVED_MAX:
        _RESOLVED[value] = result
    return result


def _resolve_text(value: str) -> Any:
    if value[:1] not in _SPECIAL_FIRST and value:
        return value
    if value in _NULL:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if _DECIMAL.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    if _OTHER_NUMBER_OR_DATE.fullmatch(value):
        raise Fallback
    return value
