"""The path resolver (gxo/engine/confine.py): what a confined run lets a path param reach."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gxo.engine.confine import (
    Confinement,
    ConfinementError,
    PathResolver,
    allowed_dirs,
    check_literal_paths,
)
from gxo.errors import PlaybookValidationError, UsageError


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """ws/ (the workspace) with symlinks in and out; outside/ and allowed/ beside it."""
    ws, outside, allowed = tmp_path / "ws", tmp_path / "outside", tmp_path / "allowed"
    for d in (ws / "sub", outside, allowed):
        d.mkdir(parents=True)
    (outside / "secret.txt").write_text("x")
    (ws / "sub" / "in.txt").write_text("in")
    (ws / "link_etc").symlink_to("/etc")
    (ws / "link_out").symlink_to(outside)
    (ws / "link_out_file").symlink_to(outside / "secret.txt")
    (ws / "link_in").symlink_to(ws / "sub")
    (ws / "link_allowed").symlink_to(allowed)
    (outside / "link_to_ws").symlink_to(ws)
    return {"ws": ws, "outside": outside, "allowed": allowed, "tmp": tmp_path}


def confined(tree: dict[str, Path], *allow: Path) -> PathResolver:
    return PathResolver(tree["ws"], confined=True, allow=allow)


@pytest.mark.parametrize(
    "path",
    ["a.txt", "sub/in.txt", "sub/../a.txt", "./sub/new/deeper.txt", ".", "", "link_in/in.txt"],
)
def test_paths_inside_the_workspace_resolve_there(tree: dict[str, Path], path: str) -> None:
    got = confined(tree).resolve(path, workload="w")
    assert got.is_absolute()
    assert Path(os.path.realpath(got)).is_relative_to(tree["ws"].resolve())


def test_an_absolute_path_inside_the_workspace_is_fine(tree: dict[str, Path]) -> None:
    target = tree["ws"] / "sub" / "in.txt"
    assert confined(tree).resolve(str(target)) == target
    assert confined(tree).resolve(str(tree["ws"])) == tree["ws"].resolve()


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("../outside/secret.txt", "resolves to"),
        ("sub/../../outside", "resolves to"),
        ("/etc/passwd", "resolves to /etc/passwd"),
        ("link_etc/passwd", "(through a symlink)"),
        ("link_etc", "(through a symlink)"),
        ("link_out/secret.txt", "(through a symlink)"),  # a symlinked parent directory
        ("link_out_file", "(through a symlink)"),
        ("link_out/new.txt", "(through a symlink)"),  # not there yet: still outside
        ("link_in/../../outside", "resolves to"),  # .. after a symlink, as the kernel does
        ("~/x", "resolves to"),
    ],
)
def test_escapes_are_refused_naming_workload_param_path_and_roots(
    tree: dict[str, Path], path: str, says: str
) -> None:
    with pytest.raises(ConfinementError) as info:
        confined(tree).resolve(path, workload="save", param="dead_letter.path")
    text = str(info.value)
    assert text.startswith("workload 'save': param 'dead_letter.path': path ")
    assert repr(path) in text
    assert says in text
    assert f"the workspace {tree['ws'].resolve()}" in text
    assert "allowed directories (--allow-path): none" in text


def test_a_link_outside_that_points_in_is_refused_by_its_directory(
    tree: dict[str, Path],
) -> None:
    # Its target is the workspace, but renaming or deleting it acts in outside/.
    with pytest.raises(ConfinementError, match=r"is in the directory .*outside, outside"):
        confined(tree).resolve(str(tree["outside"] / "link_to_ws"))


def test_allow_path_lets_paths_reach_that_directory_only(tree: dict[str, Path]) -> None:
    resolver = confined(tree, tree["allowed"])
    assert resolver.resolve(str(tree["allowed"] / "f.txt")) == tree["allowed"] / "f.txt"
    assert resolver.resolve("../allowed/f.txt") == tree["allowed"] / "f.txt"
    assert resolver.resolve("link_allowed/f.txt") == tree["allowed"] / "f.txt"
    with pytest.raises(ConfinementError, match=f"--allow-path\\): {tree['allowed']}"):
        resolver.resolve("../outside/secret.txt")
    with pytest.raises(ConfinementError):
        resolver.resolve(str(tree["tmp"] / "allowed-not-quite"))  # a prefix is not a parent


def test_the_last_component_is_kept_so_a_link_inside_stays_a_link(
    tree: dict[str, Path],
) -> None:
    # filesystem:manage state: absent removes the link, not what it points to.
    assert confined(tree).resolve("link_in") == tree["ws"] / "link_in"


def test_bad_strings_are_clear_errors(tree: dict[str, Path]) -> None:
    for resolver in (confined(tree), PathResolver(tree["ws"])):
        with pytest.raises(ConfinementError, match="NUL byte"):
            resolver.resolve("a\0b", workload="w")
        with pytest.raises(ConfinementError, match="'~' that cannot be expanded"):
            resolver.resolve("~no-such-user-gxo/x", workload="w")


def test_unconfined_keeps_todays_behaviour(tree: dict[str, Path]) -> None:
    resolver = PathResolver(tree["ws"])
    assert resolver.resolve("../outside/secret.txt") == tree["ws"] / "../outside/secret.txt"
    assert resolver.resolve("/etc/passwd") == Path("/etc/passwd")
    assert resolver.resolve("link_etc/passwd") == tree["ws"] / "link_etc/passwd"
    assert resolver.resolve("~/x") == Path.home() / "x"
    assert resolver.contains("/etc")


def test_check_opened_looks_at_the_file_really_opened(tree: dict[str, Path]) -> None:
    """A symlink swapped in after the check: the descriptor tells where the open went."""
    resolver = confined(tree)
    fd = os.open(tree["outside"] / "secret.txt", os.O_RDONLY)
    try:
        with pytest.raises(ConfinementError, match=r"was opened as .*secret.txt, outside"):
            resolver.check_opened(fd, "sub/in.txt", workload="w")
    finally:
        os.close(fd)
    fd = os.open(tree["ws"] / "sub" / "in.txt", os.O_RDONLY)
    try:
        resolver.check_opened(fd, "sub/in.txt")
    finally:
        os.close(fd)


def test_allowed_dirs_must_exist(tmp_path: Path) -> None:
    assert allowed_dirs([str(tmp_path)]) == (str(tmp_path.resolve()),)
    with pytest.raises(UsageError, match=r"--allow-path .*nope: not a directory"):
        allowed_dirs([str(tmp_path / "nope")])


def test_literal_paths_are_refused_with_file_and_line(write_playbook) -> None:
    from gxo.config.loader import load_playbook

    path = write_playbook(
        """
        schemaVersion: "1.0.0"
        name: literal
        workloads:
          - name: fine
            process: { module: filesystem:write, params: { path: ok.txt, content: x } }
          - name: up
            process:
              module: filesystem:write
              params:
                content: x
                path: ../up.txt
          - name: db
            process: { module: database:query, params: { url: "sqlite:////etc/x.db", query: "select 1" } }
          - name: later
            process: { module: filesystem:read, params: { path: "{{ '/etc/passwd' }}" } }
          - name: dead
            process:
              module: data:parse
              params:
                format: json
                content: "[]"
                on_error: dead_letter
                dead_letter: { path: /var/tmp/dl.jsonl }
        """
    )
    loaded = load_playbook(path)
    with pytest.raises(PlaybookValidationError) as info:
        check_literal_paths(loaded, Confinement(path.parent / "ws").resolver())
    lines = str(info.value).splitlines()
    assert len(lines) == 3, lines  # the templated one is checked when it runs
    assert lines[0].startswith(f"{path}:11:") and "workload 'up': param 'path'" in lines[0]
    assert lines[1].startswith(f"{path}:13:") and "param 'url': path '/etc/x.db'" in lines[1]
    assert lines[2].startswith(f"{path}:23:") and "param 'dead_letter.path'" in lines[2]


# -- fuzz ----------------------------------------------------------------------------------

_SEGMENTS = st.sampled_from(
    ["..", ".", "sub", "link_etc", "link_out", "link_in", "link_allowed", "link_out_file", "x"]
)
_PATHS = st.one_of(
    st.lists(_SEGMENTS, max_size=8).map("/".join),
    st.lists(_SEGMENTS, max_size=8).map(lambda s: "/" + "/".join(s)),
    st.text(max_size=60),
    st.builds(lambda a, b: a + b, st.sampled_from(["~", "/", "../", "link_out/", ""]), st.text()),
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=_PATHS)
def test_fuzz_a_confined_path_never_escapes_and_never_crashes(
    tree: dict[str, Path], path: str
) -> None:
    resolver = confined(tree)
    try:
        got = resolver.resolve(path, workload="w", param="path")
    except ConfinementError as exc:
        assert "workload 'w': param 'path'" in str(exc)
        return
    root = tree["ws"].resolve()
    assert Path(os.path.realpath(got)).is_relative_to(root)
    assert Path(os.path.realpath(got.parent)).is_relative_to(root) or got == root


@settings(max_examples=200, deadline=None)
@given(path=_PATHS)
def test_fuzz_unconfined_resolution_is_a_path_or_a_clear_error(path: str) -> None:
    try:
        got = PathResolver(Path("/nonexistent-ws")).resolve(path, workload="w")
    except ConfinementError as exc:
        assert "workload 'w': param 'path'" in str(exc)
        return
    assert got.is_absolute()


# -- every module declares its path params -------------------------------------------------

_PATHLIKE = ("path", "cwd", "file", "dir", "dest", "src")


def test_every_path_like_param_is_declared_so_confinement_sees_it() -> None:
    """A new module param named like a path must be in ``path_params`` (and resolved)."""
    from gxo.modules import REGISTRY

    seen = 0
    for spec in REGISTRY.all():
        fields = spec.params_model.model_fields
        wanted = {
            name for name in fields if name.split("_")[-1] in _PATHLIKE or name in ("dead_letter",)
        }
        declared = {p.split(".")[0] for p in spec.cls.path_params}
        assert wanted <= declared, (spec.name, wanted - declared)
        assert declared <= set(fields), (spec.name, declared - set(fields))
        seen += len(wanted)
    assert seen >= 10  # filesystem:*, exec, data:* dead letters, http:request ca_file
