"""The fast path of :mod:`gxo.config.yamlsafe`: libyaml composes, we convert.

libyaml (through PyYAML's ``CParser``) builds the node graph with marks; the
nodes become plain data here under YAML 1.2 rules, the way ruamel's round-trip
loader reads them. Anything this converter is not *sure* to read exactly as
ruamel does raises :class:`Fallback`, and the caller parses the text with
ruamel instead, which also words every error. libyaml caps nesting at 1,000
levels itself, so even a hostile text cannot overflow a stack here.
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
        """CParser composing nodes; tag resolution is left to the converter."""

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


def available() -> bool:
    return _COMPOSER is not None


def parse(text: str, *, string_keys: bool, all_documents: bool) -> tuple[Any, PositionMap]:
    """(data, positions) as the reference parser would return them, or :class:`Fallback`."""
    from gxo.config.yamlsafe import PositionMap

    if (
        _COMPOSER is None
        or text.startswith("%")
        or "\n%" in text
        or _ODD_CHARACTER.search(text)
        or ("&" in text and _ANCHOR.search(text))
    ):
        # No libyaml; a %YAML/%TAG directive (ruamel honours versions); a tab, which
        # libyaml accepts in places where ruamel refuses it ("a:<TAB>b"); NEL and the
        # Unicode line/paragraph separators, line breaks in YAML 1.1 only; an anchor
        # (ruamel has its own readings of anchored scalars, e.g. "&a:" is not {None: None}).
        raise Fallback
    composer = _COMPOSER(text)
    try:
        if all_documents:
            nodes = []
            while composer.check_node():
                nodes.append(composer.get_node())
        else:
            nodes = [composer.get_single_node()]
    except Exception:  # libyaml's error: ruamel reports it (or reads what libyaml cannot)
        raise Fallback from None
    finally:
        composer.dispose()
    positions = PositionMap()
    conv = _Converter(string_keys)
    out: list[Any] = []
    for node in nodes:
        keep = positions if not all_documents else None
        if node is None:
            out.append(None)
            continue
        if keep is not None and node.tag == _MAP:
            mark = node.start_mark
            keep[()] = (mark.line + 1, mark.column + 1)
        out.append(conv.convert(node, (), keep, 0))
    return (out if all_documents else out[0]), positions


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


class _Converter:
    """Nodes → plain data (+ positions). Scalars are handled inline: they are most nodes."""

    __slots__ = ("nodes", "seen", "string_keys")

    def __init__(self, string_keys: bool) -> None:
        self.string_keys = string_keys
        self.seen: set[int] = set()  # collection nodes met: a second meeting is an alias
        self.nodes = 0

    def convert(self, node: Any, path: tuple[Any, ...], positions: Any, depth: int) -> Any:
        tag = node.tag
        if tag is _PLAIN:
            return _resolve_plain(node.value)
        if tag is _STR:
            return node.value
        if tag is not _MAP and tag is not _SEQ:
            raise Fallback  # an explicit tag (!!int, !!binary, !custom): ruamel's reading
        key = id(node)
        if key in self.seen:
            raise Fallback  # an alias to a collection: ruamel caps the expansion
        self.seen.add(key)
        self.nodes += len(node.value) + 1
        if depth >= _MAX_DEPTH or self.nodes > _MAX_NODES:
            raise Fallback  # ruamel refuses it, with its wording and location
        depth += 1
        special = _SPECIAL_FIRST
        if tag is _SEQ:
            items: list[Any] = []
            append = items.append
            for i, vnode in enumerate(node.value):
                sub = path
                if positions is not None:
                    sub = (*path, i)
                    mark = vnode.start_mark
                    positions[sub] = (mark.line + 1, mark.column + 1)
                vtag = vnode.tag
                if vtag is _PLAIN:
                    v = vnode.value
                    append(v if v and v[0] not in special else _resolve_plain(v))
                elif vtag is _STR:
                    append(vnode.value)
                else:
                    append(self.convert(vnode, sub, positions, depth))
            return items
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            ktag = knode.tag
            if ktag is _PLAIN:
                k = knode.value
                if not k or k[0] in special:
                    k = _resolve_plain(k)
                    if k == "<<" or (self.string_keys and not isinstance(k, str)):
                        raise Fallback  # a merge key; or ruamel's "keys must be strings"
            elif ktag is _STR:
                k = knode.value
            else:
                raise Fallback  # a complex or tagged key
            if k in out:
                raise Fallback  # a duplicate key: ruamel's error
            sub = path
            if positions is not None:
                sub = (*path, k)
                mark = knode.start_mark
                positions[sub] = (mark.line + 1, mark.column + 1)
            vtag = vnode.tag
            if vtag is _PLAIN:
                v = vnode.value
                out[k] = v if v and v[0] not in special else _resolve_plain(v)
            elif vtag is _STR:
                out[k] = vnode.value
            else:
                out[k] = self.convert(vnode, sub, positions, depth)
        return out


def _resolve_plain(value: str) -> Any:
    """A plain scalar's value under YAML 1.2 (ruamel's resolvers), or Fallback if unsure."""
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
