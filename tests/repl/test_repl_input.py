"""Input handling: when Enter continues the input, and syntax highlighting."""

from __future__ import annotations

import pytest
from pygments.token import Keyword, Name, Number, Operator, Token

from gxo.repl.lexer import GxoInputLexer
from gxo.repl.multiline import is_complete, join_continuations


@pytest.mark.parametrize(
    "text",
    [
        "",
        "n + 1",
        "{{ n }}",
        ":module exec {command: ls}",
        ":module control:identity {msg: don't stop}",  # an apostrophe is not a string
        "{% if n %}yes{% endif %}",
        "{% set y = 1 %}{{ y }}",
        "'{'",  # brackets inside strings do not count
        "n)",  # more closers: submit, the error is reported
        "[1,\n 2]",
    ],
)
def test_complete_inputs(text: str) -> None:
    assert is_complete(text)


@pytest.mark.parametrize(
    "text",
    [
        "{{ n",
        ":module exec {",
        ":set xs = [1,",
        "{% for i in xs %}{{ i }}",
        "{% set block %}text",
        "a \\",
        "a \\  ",
    ],
)
def test_incomplete_inputs(text: str) -> None:
    assert not is_complete(text)


def test_join_continuations() -> None:
    assert join_continuations(":module exec \\\n  command: ls") == ":module exec \n  command: ls"
    assert join_continuations("a\nb") == "a\nb"


def tokens(text: str) -> list[tuple[int, object, str]]:
    result = list(GxoInputLexer().get_tokens_unprocessed(text))
    # the tokens cover the input exactly, in order
    assert "".join(value for _, _, value in result) == text
    position = 0
    for index, _, value in result:
        assert index == position
        position += len(value)
    return result


@pytest.mark.parametrize(
    "text",
    [
        "n + 1",
        "{{ a | upper }}",
        "hi {{ a.b }}!",
        ':module exec {command: "{{ x }}"}',
        ":module exec \\\n  command: ls",
        ":module",
        ":module ",
        ":set y = x * 2",
        ":run  b",
        "  n",
        "{% for i in xs %}{{ i }}{% endfor %}",
    ],
)
def test_lexer_covers_every_input(text: str) -> None:
    tokens(text)


def test_lexer_token_kinds() -> None:
    bare = {value: kind for _, kind, value in tokens("n * 2")}
    assert bare["n"] in Name.Variable and bare["*"] in Operator and bare["2"] in Number
    command = tokens(":module exec {command: ls}")
    assert command[0][1] is Keyword and command[0][2] == ":module"
    kinds = {value: kind for _, kind, value in command}
    assert kinds["exec"] in Name.Function
    assert kinds["command"] in Name.Tag  # YAML key
    assigned = {value.strip(): kind for _, kind, value in tokens(":set total = n + 1")}
    assert assigned["total"] in Name.Variable and assigned["="] in Operator
    braced = {value: kind for _, kind, value in tokens("{{ x | upper }}")}
    assert braced["{{"] in Token.Comment.Preproc and braced["upper"] in Name.Function


def test_prompt_lexer_highlights_a_document() -> None:
    from prompt_toolkit.document import Document

    from gxo.repl.lexer import prompt_lexer

    get_line = prompt_lexer().lex_document(Document(":run a"))
    assert get_line(0)[0] == ("class:pygments.keyword", ":run")
    get_line = prompt_lexer().lex_document(Document("[1,\n n]"))  # continued over two lines
    assert ("class:pygments.name.variable", "n") in get_line(1)
