"""Syntax highlighting of REPL input with pygments.

One input can be three languages: a ``:command`` word, YAML/JSON params
(``:module NAME {...}``) with Jinja inside, and Jinja expressions — braced
(``{{ x }}``) or bare (``x | upper``). :class:`GxoInputLexer` picks the right
pygments lexer for each part and shifts the token offsets back into the input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pygments.lexer import Lexer
from pygments.lexers.templates import DjangoLexer, YamlJinjaLexer
from pygments.token import Keyword, Name, Operator, Text, _TokenType

__all__ = ["GxoInputLexer", "prompt_lexer"]

_BARE_OPEN, _BARE_CLOSE = "{{ ", " }}"
_MODULE_ARGS = re.compile(r"(\s*)(\S*)(.*)", re.DOTALL)


class GxoInputLexer(Lexer):
    """Pygments lexer for a whole REPL input."""

    name = "GXO REPL input"
    aliases = ["gxo-repl"]

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._jinja = DjangoLexer(**options)
        self._yaml = YamlJinjaLexer(**options)

    def get_tokens_unprocessed(self, text: str) -> Iterator[tuple[int, _TokenType, str]]:
        stripped = text.lstrip()
        lead = len(text) - len(stripped)
        if lead:
            yield 0, Text, text[:lead]
        if stripped.startswith(":"):
            yield from self._command(stripped, lead)
        else:
            yield from self._expression(stripped, lead)

    def _command(self, text: str, offset: int) -> Iterator[tuple[int, _TokenType, str]]:
        word_end = len(text.split(None, 1)[0])
        yield offset, Keyword, text[:word_end]
        command, rest = text[1:word_end], text[word_end:]
        pos = offset + word_end
        if command == "module":
            # ":module NAME params": the name, then YAML/JSON params with Jinja inside.
            match = _MODULE_ARGS.match(rest)
            assert match is not None  # the pattern matches any text
            space, name, params = match.groups()
            if space:
                yield pos, Text, space
            if name:
                yield pos + len(space), Name.Function, name
            yield from _shift(
                self._yaml.get_tokens_unprocessed(params), pos + len(space) + len(name)
            )
        elif command == "set" and "=" in rest:
            # ":set name = expression"
            target, _, expression = rest.partition("=")
            yield pos, Name.Variable, target
            yield pos + len(target), Operator, "="
            yield from self._expression(expression, pos + len(target) + 1)
        elif rest:
            yield pos, Text, rest

    def _expression(self, text: str, offset: int) -> Iterator[tuple[int, _TokenType, str]]:
        if not text:
            return
        if any(marker in text for marker in ("{{", "{%", "{#")):
            yield from _shift(self._jinja.get_tokens_unprocessed(text), offset)
            return
        # A bare expression: lex it as the inside of {{ }} and drop the added braces.
        wrapped = _BARE_OPEN + text + _BARE_CLOSE
        inner_end = len(_BARE_OPEN) + len(text)
        for index, token, value in self._jinja.get_tokens_unprocessed(wrapped):
            start, end = index, index + len(value)
            lo, hi = max(start, len(_BARE_OPEN)), min(end, inner_end)
            if lo < hi:
                yield offset + lo - len(_BARE_OPEN), token, value[lo - start : hi - start]


def _shift(
    tokens: Iterator[tuple[int, _TokenType, str]], offset: int
) -> Iterator[tuple[int, _TokenType, str]]:
    for index, token, value in tokens:
        yield index + offset, token, value


def prompt_lexer() -> Any:
    """The prompt_toolkit lexer for the REPL's input buffer."""
    from prompt_toolkit.lexers import PygmentsLexer

    return PygmentsLexer(GxoInputLexer)


def prompt_style() -> Any:
    """Input colours from the terminal's own palette (ANSI names, not pygments' fixed
    dark blues), so names and filters stay readable on dark and light themes alike."""
    from prompt_toolkit.styles import style_from_pygments_dict
    from pygments.token import Comment, Error, Number, Punctuation, String

    return style_from_pygments_dict(
        {
            Keyword: "ansicyan bold",
            Name: "",
            Name.Function: "ansigreen",
            Name.Variable: "ansiyellow",
            Name.Builtin: "ansimagenta",
            Name.Attribute: "ansicyan",
            Name.Tag: "ansicyan",
            String: "ansiyellow",
            Number: "ansimagenta",
            Operator: "",
            Punctuation: "",
            Comment: "ansibrightblack italic",
            Comment.Preproc: "ansicyan",
            Error: "ansired",
        }
    )
