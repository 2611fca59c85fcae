"""v0.1.2a data:join params, translated by the legacy shim, return v0.1.2a's rows.

v0.1.2a: ``left`` kept the unmatched *probe* records, ``right`` the unmatched
*build* records (roles, not places), merge strategies ``flat``/``nested``.
1.0.0: ``left``/``right`` keep the unmatched records of the first/second side of
``on``, like SQL. Every role layout is checked against a reference of the old
semantics.
"""

from __future__ import annotations

import copy
import itertools
import json

import pytest

from gxo.config.legacy import migrate_join_params
from gxo.modules.testkit import run_module

USERS = [{"user_id": 1, "name": "ada"}, {"user_id": 2, "name": "bob"}]
LOGINS = [{"user_id": 1, "at": "09:00"}, {"user_id": 3, "at": "10:00"}, {"at": "never"}]
DATA = {"users": USERS, "logins": LOGINS}


def upstream_rows(join_type: str, build: str, probe: str) -> list[tuple]:
    """The old engine's rows as (name, at) pairs: matches, then the kept unmatched side."""
    b, p = DATA[build], DATA[probe]
    matches = [
        (x, y)
        for y in p
        for x in b
        if x.get("user_id") is not None and x.get("user_id") == y.get("user_id")
    ]
    rows = [{**x, **y} for x, y in matches]
    if join_type in ("left", "outer"):  # unmatched probe records
        rows += [y for y in p if not any(y is m[1] for m in matches)]
    if join_type in ("right", "outer"):  # unmatched build records
        rows += [x for x in b if not any(x is m[0] for m in matches)]
    return sorted(((r.get("name"), r.get("at")) for r in rows), key=str)


def sides(order: tuple[str, str], roles: tuple[str | None, str | None]) -> list[dict]:
    out = []
    for stream, role in zip(order, roles, strict=True):
        side = {"stream": stream, "field": "user_id"}
        if role is not None:
            side["role"] = role
        out.append(side)
    return out


def effective_roles(roles: tuple[str | None, str | None]) -> tuple[str, str]:
    """data:join's defaults: a missing role is the other's opposite; none given: first builds."""
    a, b = roles
    if a is None and b is None:
        return "build", "probe"
    if a is None:
        a = "probe" if b == "build" else "build"
    if b is None:
        b = "probe" if a == "build" else "build"
    return a, b


LAYOUTS = [
    (order, roles)
    for order in (("users", "logins"), ("logins", "users"))
    for roles in (
        ("build", "probe"),
        ("probe", "build"),
        (None, None),
        ("build", None),
        (None, "build"),
        ("probe", None),
        (None, "probe"),
    )
]


@pytest.mark.parametrize("join_type", ["inner", "left", "right", "outer"])
@pytest.mark.parametrize(("order", "roles"), LAYOUTS)
async def test_translated_join_returns_the_upstream_rows(join_type, order, roles) -> None:
    params = {"join_type": join_type, "on": sides(order, roles)}
    warnings: list[str] = []
    migrate_join_params(params, lambda message, path: warnings.append(message))
    r = await run_module("data:join", params, inputs=DATA)
    assert r.ok, r.error
    first, second = effective_roles(roles)
    build = order[0] if first == "build" else order[1]
    probe = order[1] if second == "probe" else order[0]
    got = sorted(((rec.get("name"), rec.get("at")) for rec in r.records), key=str)
    assert got == upstream_rows(join_type, build, probe)
    # A warning exactly when the name had to change.
    assert bool(warnings) == (params["join_type"] != join_type)


def test_merge_strategy_names_are_translated() -> None:
    flat = {
        "join_type": "inner",
        "on": sides(("users", "logins"), (None, None)),
        "output": {"merge_strategy": "flat"},
    }
    nested = copy.deepcopy(flat)
    nested["output"] = {"merge_strategy": "nested", "nesting_keys": {"users": "u"}}
    for params in (flat, nested):
        migrate_join_params(params, lambda message, path: None)
    assert flat["output"] == {"merge_strategy": "merge"}
    assert nested["output"] == {"merge_strategy": "nest", "nesting_keys": {"users": "u"}}


@pytest.mark.parametrize(
    ("params", "warned"),
    [
        # A template or roles that are not literal: left alone, with a warning.
        (
            {"join_type": "{{ jt }}", "on": sides(("users", "logins"), (None, None))},
            "is a template",
        ),
        (
            {"join_type": "left", "on": sides(("users", "logins"), ("{{ r }}", None))},
            "could not be translated",
        ),
        (
            {"join_type": "left", "on": sides(("users", "logins"), ("build", "build"))},
            "could not be translated",
        ),
        ({"join_type": "left", "on": "{{ sides }}"}, "could not be translated"),
        # Already meaning the same thing, or not an outer side: untouched, no warning.
        ({"join_type": "left", "on": sides(("users", "logins"), ("probe", "build"))}, None),
        ({"join_type": "outer", "on": sides(("users", "logins"), (None, None))}, None),
        ({"on": sides(("users", "logins"), (None, None))}, None),
    ],
)
def test_untranslatable_or_unchanged(params, warned) -> None:
    before = json.dumps(params, sort_keys=True)
    warnings: list[tuple[str, tuple]] = []
    migrate_join_params(params, lambda message, path: warnings.append((message, path)))
    assert json.dumps(params, sort_keys=True) == before
    if warned is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warned in warnings[0][0]
        assert warnings[0][1] == ("join_type",)


def test_layouts_cover_every_role_combination() -> None:
    combos = {roles for _, roles in LAYOUTS}
    valid = {
        r
        for r in itertools.product((None, "build", "probe"), repeat=2)
        if r[0] is None or r[0] != r[1]
    }
    assert combos == valid
