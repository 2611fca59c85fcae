"""Finding ``*.test.gxo.yaml`` files and ``--run`` selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from gxo.errors import UsageError
from gxo.testing.discovery import TestFile, compile_selector, discover, display_path, selected


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x", encoding="utf-8")


def test_discovers_recursively_in_sorted_order_skipping_hidden_and_venvs(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "b.test.gxo.yaml",
        "a.test.gxo.yaml",
        "sub/c.test.gxo.yaml",
        "sub/deeper/a.test.gxo.yaml",
        "aaa/z.test.gxo.yaml",
        "not_a_test.gxo.yaml",
        "x.test.gxo.yml",
        ".hidden/h.test.gxo.yaml",
        "node_modules/n.test.gxo.yaml",
        "env/pyvenv.cfg",
        "env/v.test.gxo.yaml",
    )
    found = [t.path.relative_to(tmp_path).as_posix() for t in discover([tmp_path])]
    assert found == [
        "a.test.gxo.yaml",
        "aaa/z.test.gxo.yaml",
        "b.test.gxo.yaml",
        "sub/c.test.gxo.yaml",
        "sub/deeper/a.test.gxo.yaml",
    ]


def test_paths_keep_their_order_files_count_once_and_explicit_files_run_whatever_their_name(
    tmp_path: Path,
) -> None:
    touch(tmp_path, "one/a.test.gxo.yaml", "two/b.test.gxo.yaml", "two/special.fails.gxo.yaml")
    tests = discover(
        [
            tmp_path / "two",
            tmp_path / "one",
            tmp_path / "two/b.test.gxo.yaml",
            tmp_path / "two/special.fails.gxo.yaml",
        ]
    )
    assert [t.path.name for t in tests] == [
        "b.test.gxo.yaml",
        "a.test.gxo.yaml",
        "special.fails.gxo.yaml",
    ]


def test_display_is_relative_to_the_cwd_when_below_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path, "tests/a.test.gxo.yaml")
    monkeypatch.chdir(tmp_path)
    assert [t.display for t in discover([Path("tests")])] == ["tests/a.test.gxo.yaml"]
    outside = tmp_path.parent / "elsewhere.test.gxo.yaml"
    assert display_path(outside) == outside.as_posix()


def test_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no such file or directory: .*nope"):
        discover([tmp_path / "nope"])


def test_an_empty_directory_discovers_nothing(tmp_path: Path) -> None:
    assert discover([tmp_path]) == []


def test_run_selects_by_path_or_playbook_name() -> None:
    test = TestFile(Path("/repo/tests/api.test.gxo.yaml"), "tests/api.test.gxo.yaml")
    assert selected(None, test, None)
    assert selected(compile_selector("api"), test, "whatever")
    assert selected(compile_selector("^tests/"), test, None)
    assert selected(compile_selector("^users-"), test, "users-crud")
    assert not selected(compile_selector("^users-"), test, "orders")
    assert not selected(compile_selector("^users-"), test, None)


def test_a_bad_regex_is_a_usage_error_naming_it() -> None:
    with pytest.raises(UsageError, match=r"--run: invalid regular expression '\(unclosed'"):
        compile_selector("(unclosed")
