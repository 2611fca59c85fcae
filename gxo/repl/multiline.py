"""When Enter submits the input and when it starts a new line.

Input continues on the next line while brackets, braces or parentheses are open,
while a ``{% if %}``/``{% for %}``... block is not closed, or when the line ends
with a backslash. Esc+Enter always submits.
"""

from __future__ import annotations

import re

__all__ = ["is_complete", "join_continuations"]

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}
_TAG = re.compile(r"\{%[-+]?\s*(\w+)([^%]*)")
# Jinja tags that need an {% end... %}; "set" only in its block form ({% set x %}...{% endset %}).
_BLOCKS = frozenset(
    {"if", "for", "macro", "call", "filter", "raw", "with", "block", "set", "autoescape"}
)


def is_complete(text: str) -> bool:
    """True if ``text`` is a whole input (Enter submits), False if it continues."""
    if not text.strip():
        return True
    if text.rstrip(" \t").endswith("\\"):
        return False
    return _brackets_closed(text) and _blocks_closed(text)


def join_continuations(text: str) -> str:
    """Drop the backslash of each ``\\``-continued line (the newline stays)."""
    return re.sub(r"\\[ \t]*\n", "\n", text)


def _brackets_closed(text: str) -> bool:
    depth = 0
    quote: str | None = None
    escaped = False
    prev = ""
    for ch in text:
        before, prev = prev, ch
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote or ch == "\n":  # an unclosed quote ends at the line's end
                quote = None
            continue
        if ch in "'\"" and not before.isalnum():  # "don't" is an apostrophe, not a string
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            # More closers than openers is a syntax error: submit and let it be reported.
            if depth == 0:
                return True
            depth -= 1
    return depth == 0


def _blocks_closed(text: str) -> bool:
    depth = 0
    for match in _TAG.finditer(text):
        word, rest = match.group(1), match.group(2)
        if word.startswith("end"):
            depth -= 1
        elif word in _BLOCKS and not (word == "set" and "=" in rest):
            depth += 1
    return depth <= 0
