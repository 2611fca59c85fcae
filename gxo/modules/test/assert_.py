"""``test:assert``: check values of a run; report every failed assertion at once."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.errors import TemplateError, UndefinedNameError
from gxo.modules.base import CheckMode, Module, ModuleParams, raw_template, register
from gxo.template.engine import is_template
from gxo.template.filters import is_truthy

OPERATORS = (
    "equal_to",
    "not_equal_to",
    "contains",
    "not_contains",
    "matches",
    "is_true",
    "is_false",
    "is_none",
    "is_defined",
    "greater_than",
    "less_than",
    "length",
)
_FLAG_OPERATORS = frozenset({"is_true", "is_false", "is_none", "is_defined"})
_UNDEFINED = object()  # the `actual` of an assertion whose template named something missing


class Assertion(ModuleParams):
    """One assertion: ``actual`` plus exactly one operator."""

    actual: Any = Field(
        ..., description='The value under test, usually a template: "{{ resp.status_code }}"'
    )
    msg: str | None = Field(None, description="What the assertion checks, shown when it fails")
    equal_to: Any = Field(
        None, description="actual equals this (1 == 1.0, but true != 1 and '200' != 200)"
    )
    not_equal_to: Any = Field(None, description="actual does not equal this")
    contains: Any = Field(
        None, description="substring of a string actual, item of a list, key of a mapping"
    )
    not_contains: Any = Field(None, description="the opposite of contains")
    matches: str | None = Field(None, description="regular expression found in actual (re.search)")
    is_true: bool | None = Field(None, description="true: actual is truthy; false: it is not")
    is_false: bool | None = Field(
        None,
        description="true: actual is falsy (false, 0, '', 'false', none, empty); false: it is not",
    )
    is_none: bool | None = Field(None, description="true: actual is null; false: it is not")
    is_defined: bool | None = Field(
        None,
        description="true: actual renders without an undefined name; false: it names something missing",
    )
    greater_than: Any = Field(None, description="actual > this")
    less_than: Any = Field(None, description="actual < this")
    length: int | str | None = Field(None, description="len(actual) equals this")

    @model_validator(mode="after")
    def _one_operator(self) -> Assertion:
        given = [op for op in OPERATORS if op in self.model_fields_set]
        if not given:
            raise ValueError(f"an assertion needs one operator: one of {', '.join(OPERATORS)}")
        if len(given) > 1:
            raise ValueError(
                f"an assertion takes one operator, got {' and '.join(given)}: split it into several assertions"
            )
        op = given[0]
        if op in _FLAG_OPERATORS and getattr(self, op) is None:
            raise ValueError(f"{op} must be true or false")
        if op == "matches" and self.matches is not None and not is_template(self.matches):
            try:
                re.compile(self.matches)
            except re.error as exc:
                raise ValueError(
                    f"matches: invalid regular expression {self.matches!r}: {exc}"
                ) from None
        if op == "length" and isinstance(self.length, str) and not is_template(self.length):
            raise ValueError(f"length must be a non-negative integer, got {self.length!r}")
        if op == "length" and isinstance(self.length, int) and self.length < 0:
            raise ValueError(f"length must be a non-negative integer, got {self.length}")
        return self

    @property
    def operator(self) -> str:
        return next(op for op in OPERATORS if op in self.model_fields_set)


@register("test:assert", layer="test")
class AssertModule(Module):
    """Check values of a run: registered results, workload statuses, anything a template reaches.

    Every assertion is evaluated, even when an earlier one fails or its template
    names something missing; the workload fails listing each failed assertion
    with expected vs actual and a diff (unified for multi-line strings, per key
    for mappings, per index for lists). ``actual`` is a template rendered to its
    native value; operator values may be templates too. Equality is strict about
    types: ``"200"`` is not ``200``, ``true`` is not ``1``. ``is_defined: false``
    passes when ``actual`` names a missing value, e.g. the register key of a
    workload that was skipped, or a key absent from a response.

    Failure paths are testable: give the workload under test
    ``ignore_errors: true`` and assert on ``_gxo.workloads.<name>.status`` and
    ``.error``.

    Example:
        - name: check_api
          process:
            module: test:assert
            params:
              assertions:
                - { actual: "{{ resp.status_code }}", equal_to: 200, msg: "API answers" }
                - { actual: "{{ resp.json_body['items'] }}", length: 3 }
                - { actual: "{{ resp.json_body.owner }}", matches: "^ada" }
                - { actual: "{{ _gxo.workloads.flaky.status }}", equal_to: Failed }
                - { actual: "{{ skipped_result }}", is_defined: false }
    """

    # is_defined must be able to test a name nobody defined: the module reports it.
    strict_template_names = False

    class Params(ModuleParams):
        assertions: list[Assertion] = raw_template(
            ...,
            min_length=1,
            description="Assertions, each `actual` plus one operator and an optional `msg`",
        )

    summary = {
        "assertions_passed": "how many assertions held",
        "assertions_failed": "on failure: how many did not",
        "failures": "on failure: [{index, msg, operator, expected, actual, diff, error}] per failed assertion",
    }

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        failures: list[dict[str, Any]] = []
        for index, assertion in enumerate(params.assertions):
            failure = _check(ctx, index, assertion)
            label = _label(index, failure["msg"] if failure else _render_msg(ctx, index, assertion))
            if failure is None:
                ctx.log(f"ok    {label}: {assertion.operator}")
            else:
                failures.append(failure)
                ctx.log(f"FAIL  {label}: {failure['reason']}", level="error")
        passed = len(params.assertions) - len(failures)
        if failures:
            shown = "; ".join(
                f"{_label(f['index'], f['msg'])}: {f['reason']}" for f in failures[:3]
            )
            more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
            raise ctx.fail(
                f"{len(failures)} of {len(params.assertions)} assertions failed: {shown}{more}",
                summary={
                    "assertions_passed": passed,
                    "assertions_failed": len(failures),
                    "failures": failures,
                },
            )
        return {"assertions_passed": passed}


def _label(index: int, msg: str | None) -> str:
    return f"assertions[{index}]" + (f" ({msg})" if msg else "")


def _render_msg(ctx: ModuleContext, index: int, assertion: Assertion) -> str | None:
    if assertion.msg is None or not is_template(assertion.msg):
        return assertion.msg
    try:
        return str(ctx.render(assertion.msg, path=f"assertions[{index}].msg"))
    except TemplateError:
        return assertion.msg


def _check(ctx: ModuleContext, index: int, assertion: Assertion) -> dict[str, Any] | None:
    """None when the assertion holds, else its failure record."""
    op = assertion.operator
    base = f"assertions[{index}]"
    msg = _render_msg(ctx, index, assertion)
    source = (
        assertion.actual
        if isinstance(assertion.actual, str) and is_template(assertion.actual)
        else None
    )

    def failure(
        reason: str,
        expected: Any = None,
        actual: Any = None,
        diff: str | None = None,
        error: str | None = None,
    ) -> dict[str, Any]:
        return {
            "index": index,
            "msg": msg,
            "operator": op,
            "expected": expected,
            "actual": None if actual is _UNDEFINED else actual,
            "actual_template": source,
            "diff": diff,
            "error": error,
            "reason": reason,
        }

    try:
        actual = ctx.render_unredacted(assertion.actual, path=f"{base}.actual")
    except UndefinedNameError as exc:
        if op == "is_defined":
            actual = _UNDEFINED
        else:
            return failure(
                f"cannot evaluate actual: {exc.message}", error=exc.message, actual=_UNDEFINED
            )
    except TemplateError as exc:
        return failure(
            f"cannot evaluate actual: {exc.message}", error=exc.message, actual=_UNDEFINED
        )
    expected = getattr(assertion, op)
    if op not in _FLAG_OPERATORS:
        try:
            expected = ctx.render_unredacted(expected, path=f"{base}.{op}")
        except TemplateError as exc:
            return failure(f"cannot evaluate {op}: {exc.message}", error=exc.message, actual=actual)
    try:
        reason = _evaluate(op, expected, actual)
    except _Invalid as exc:
        return failure(str(exc), expected=expected, actual=actual)
    if reason is None:
        return None
    secrets = ctx.run.secrets
    if secrets and (secrets.is_secret(expected) or secrets.is_secret(actual)):
        # Compared in clear, shown redacted: the message and diff are made from the
        # redacted values, so no caret line or cut excerpt points into a secret.
        expected, actual = secrets.redact(expected), secrets.redact(actual)
        try:
            shown = _evaluate(op, expected, actual)
        except _Invalid as exc:
            shown = str(exc)
        reason = shown or f"{op} failed; the values differ inside a secret (shown redacted)"
        diff = _redacted_diff(expected, actual) if op == "equal_to" else None
        return failure(reason, expected=expected, actual=actual, diff=diff)
    diff = None
    if op == "equal_to":
        from gxo.testing.diff import render_diff

        diff = render_diff(expected, actual)
    return failure(reason, expected=expected, actual=actual, diff=diff)


def _redacted_diff(expected: Any, actual: Any) -> str | None:
    """The diff of two redacted values, without ndiff's ``?`` caret lines (they locate
    characters that differ, next to or inside a secret) and none when they look equal."""
    from gxo.testing.diff import render_diff, values_equal

    if values_equal(expected, actual):
        return None
    diff = render_diff(expected, actual)
    if diff is None:
        return None
    return "\n".join(line for line in diff.splitlines() if not line.startswith("? "))


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


class _Invalid(Exception):
    """The operator cannot apply to these values (a failure, with this explanation)."""


def _evaluate(op: str, expected: Any, actual: Any) -> str | None:
    """None when ``actual <op> expected`` holds, else a one-line reason."""
    from gxo.testing.diff import format_value as fmt
    from gxo.testing.diff import type_name, values_equal

    if op == "is_defined":
        defined = actual is not _UNDEFINED
        if defined == expected:
            return None
        return (
            f"expected an undefined value, got {fmt(actual, 200)}"
            if defined
            else "expected a defined value, but it is undefined"
        )
    if op in ("equal_to", "not_equal_to"):
        equal = values_equal(expected, actual)
        if op == "equal_to" and not equal:
            hint = ""
            if type_name(expected) != type_name(actual) and {
                type_name(expected),
                type_name(actual),
            } != {"int", "float"}:
                hint = f" ({type_name(expected)} vs {type_name(actual)})"
            return f"expected {fmt(expected, 200)}, actual {fmt(actual, 200)}{hint}"
        if op == "not_equal_to" and equal:
            return f"expected anything but {fmt(expected, 200)}"
        return None
    if op in ("contains", "not_contains"):
        found = _contains(actual, expected)
        if op == "contains" and not found:
            return f"{fmt(actual, 200)} does not contain {fmt(expected, 200)}"
        if op == "not_contains" and found:
            return f"{fmt(actual, 200)} contains {fmt(expected, 200)}"
        return None
    if op == "matches":
        if isinstance(actual, bool) or not isinstance(actual, str | int | float):
            raise _Invalid(
                f"matches needs a string, actual is {_a(type_name(actual))}: {fmt(actual, 200)}"
            )
        try:
            found_match = re.search(str(expected), str(actual))
        except re.error as exc:
            raise _Invalid(f"matches: invalid regular expression {expected!r}: {exc}") from None
        return None if found_match else f"{fmt(actual, 200)} does not match /{expected}/"
    if op in ("is_true", "is_false"):
        want = expected if op == "is_true" else not expected
        if is_truthy(actual) == want:
            return None
        return f"expected a {'truthy' if want else 'falsy'} value, actual {fmt(actual, 200)}"
    if op == "is_none":
        if (actual is None) == expected:
            return None
        return (
            f"expected null, actual {fmt(actual, 200)}"
            if expected
            else "expected a value, actual is null"
        )
    if op in ("greater_than", "less_than"):
        try:
            holds = actual > expected if op == "greater_than" else actual < expected
        except TypeError:
            raise _Invalid(
                f"cannot compare {type_name(actual)} {fmt(actual, 200)} with {type_name(expected)} {fmt(expected, 200)}"
            ) from None
        sign = ">" if op == "greater_than" else "<"
        return (
            None
            if holds
            else f"expected a value {sign} {fmt(expected, 200)}, actual {fmt(actual, 200)}"
        )
    if op == "length":
        if isinstance(expected, bool) or not isinstance(expected, int):
            raise _Invalid(f"length must be an integer, got {fmt(expected, 200)}")
        try:
            size = len(actual)
        except TypeError:
            raise _Invalid(f"{_a(type_name(actual))} has no length: {fmt(actual, 200)}") from None
        return (
            None
            if size == expected
            else f"expected length {expected}, actual length {size}: {fmt(actual, 200)}"
        )
    raise AssertionError(
        f"unknown operator {op}"
    )  # pragma: no cover - Assertion validates operators


def _contains(container: Any, item: Any) -> bool:
    from collections.abc import Mapping

    from gxo.testing.diff import format_value, type_name, values_equal

    if isinstance(container, str):
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise _Invalid(
                f"a string can only contain text, got {type_name(item)} {format_value(item, 200)}"
            )
        return str(item) in container
    if isinstance(container, Mapping):
        return item in container
    if isinstance(container, list | tuple):
        return any(values_equal(item, x) for x in container)
    raise _Invalid(
        f"cannot test containment in {_a(type_name(container))}: {format_value(container, 200)}"
    )
