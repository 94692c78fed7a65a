"""Robustness of the expression language (ivr/expr.py) on pathological input.

Compiling any text raises only ``ExprError``; evaluating only ``ExprRuntimeError``;
nothing hangs or eats memory; a caller-supplied value is never read as a template.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.expr import (
    MAX_DEPTH, MAX_SOURCE_LENGTH, ExprError, ExprRuntimeError, compile_expr, compile_template,
    interpolate,
)

TOKENS = ["(", ")", "[", "]", ",", "+", "-", "*", "/", "%", "<", ">", "==", "!=", "<=", ">=",
          "'", '"', "\\", ".", " ", "0", "7", "1.5", "99999999999999999999", "and", "or", "not",
          "in", "true", "false", "none", "x", "s", "items", "nothing", "len(", "int(", "str(",
          "lower(", "startswith(", "defined(", "**", "=", "&&", "${", "{", "é", "١"]

HOSTILE_VARIABLES = {
    "x": 3, "s": "abc", "items": [1, "a", None, [2]], "nothing": None, "flag": True,
    "huge": 10 ** 5000,   # past Python's 4300-digit int->str limit
    "real": 2.5, "nan": float("nan"), "inf": float("inf"),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map("".join))
def test_any_text_compiles_or_raises_expr_error(source):
    """Token soup: compile_expr raises ExprError (with a column) or gives an expression
    whose evaluation raises at most ExprRuntimeError."""
    try:
        expression = compile_expr(source)
    except ExprError as exc:
        assert 1 <= exc.column <= len(source) + 1
        return
    try:
        expression.evaluate(HOSTILE_VARIABLES)
    except ExprRuntimeError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_any_unicode_text_compiles_or_raises_expr_error(source):
    """Arbitrary unicode (control characters, other scripts' digits) never crashes the tokenizer."""
    try:
        compile_expr(source)
    except ExprError:
        pass


@pytest.mark.parametrize("source", [
    "(" * 5000 + "1" + ")" * 5000,
    "-" * 900 + "1",
    "not " * 240 + "true",
    "[" * 400 + "]" * 400,
    "len(" * 150 + "s" + ")" * 150,
    "1" + "+1" * 499,
])
def test_deep_or_long_nesting_is_a_compile_error(source):
    """Nesting past MAX_DEPTH (or text past MAX_SOURCE_LENGTH) is refused, never a RecursionError."""
    with pytest.raises(ExprError) as caught:
        compile_expr(source)
    assert "nested too deeply" in caught.value.message or "too long" in caught.value.message


def test_nesting_at_the_limit_still_compiles():
    """Just under the depth limit is fine (the limit is not off by a lot)."""
    source = "(" * (MAX_DEPTH - 1) + "1" + ")" * (MAX_DEPTH - 1)
    assert compile_expr(source).evaluate({}) == 1


def test_a_very_long_expression_is_refused_quickly():
    """A megabyte of expression is refused on its length."""
    with pytest.raises(ExprError) as caught:
        compile_expr("1 + " * 250_000 + "1")
    assert caught.value.column == MAX_SOURCE_LENGTH + 1


@pytest.mark.parametrize("source", ["'a' * 999999999", "s * 999999999", "[1] * 999999999",
                                    "999999999 * 'a'", "2 ** 999999"])
def test_no_repetition_or_power_blow_up(source):
    """Sequence repetition is not an operation of the language, and there is no power operator."""
    with pytest.raises((ExprError, ExprRuntimeError)):
        compile_expr(source).evaluate(HOSTILE_VARIABLES)


@pytest.mark.parametrize("source", ["'a' < 1", "none < 1", "items < 1", "s > items", "x in 5",
                                    "1 in s", "-s", "s - 1", "items + 1", "s + 1", "x / 0",
                                    "x % 0", "real / 0", "int('12a')", "int(none)", "len(5)",
                                    "lower(5)", "startswith(x, 1)", "undefined_name + 1",
                                    "int(inf)", "int(nan)", "huge * 1.5", "str(huge)"])
def test_mixed_types_and_bad_values_raise_runtime_errors(source):
    """Every wrong combination is an ExprRuntimeError naming the expression."""
    with pytest.raises(ExprRuntimeError) as caught:
        compile_expr(source).evaluate(HOSTILE_VARIABLES)
    assert repr(source) in str(caught.value)


def test_equality_of_mixed_types_is_just_false():
    """`==` between unrelated types is false, not an error (tier == 5 with tier 'vip')."""
    assert compile_expr("s == 5 or items == s or nothing == 0").evaluate(HOSTILE_VARIABLES) is False


def test_odd_objects_from_a_service_fail_as_runtime_errors():
    """A value no flow author expects (a set, an object whose bool() raises) is still
    an ExprRuntimeError, not a Python exception."""
    class Weird:
        def __bool__(self):
            raise RuntimeError("no truth")

    for source in ("not w", "w and true", "w < 1", "len(w)"):
        with pytest.raises(ExprRuntimeError):
            compile_expr(source).evaluate({"w": Weird()})


def test_a_product_of_huge_numbers_is_refused():
    """x*x*...*x (40 factors, allowed by the depth limit) on a 5000-digit x must be
    refused rather than computing a 200 000-digit number: four such set steps in a row
    block the reactor for many seconds and a fifth exhausts memory."""
    product = compile_expr("*".join(["x"] * 40))
    with pytest.raises(ExprRuntimeError):
        product.evaluate({"x": 10 ** 5000})


# ---------------------------------------------------------------- templates and caller text

@pytest.mark.parametrize("value", ["${caller_id}", "$${x}", "${", "}", '"; EXEC System rm', "\n\r",
                                   "中文 ${x}", "%s %(x)s {x}"])
def test_a_variable_value_is_never_interpolated_again(value):
    """A caller-controlled value (CallerIDName) containing `${...}` is copied as it is."""
    rendered = interpolate("Hello ${caller_name}!", {"caller_name": value, "caller_id": "SECRET", "x": 1})
    assert rendered == f"Hello {value}!"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("${}ab_ 1\\\"'\n")), max_size=40))
def test_any_template_text_compiles_or_raises_expr_error(text):
    """Template soup: compile_template raises ExprError or gives a template whose names
    are valid identifiers."""
    try:
        template = compile_template(text)
    except ExprError as exc:
        assert 1 <= exc.column <= len(text) + 1
        return
    assert all(name.isidentifier() for name in template.names)


def test_rendering_a_number_too_long_to_print_is_a_runtime_error():
    """`${x}` of a 5000-digit number fails as ExprRuntimeError, like str(x) in an expression."""
    with pytest.raises(ExprRuntimeError):
        interpolate("balance ${huge}", HOSTILE_VARIABLES)


def test_a_huge_template_is_refused():
    """A prompt text of a megabyte is refused on its length."""
    with pytest.raises(ExprError):
        compile_template("${x}" * 250_000)


@pytest.mark.parametrize("source, variables", [
    ("x * 10", {"x": 10 ** 100}), ("x + x", {"x": 10 ** 100}), ("0 - x - x", {"x": 10 ** 100}),
    ("x * x", {"x": 1e200}), ("x / y", {"x": 1e300, "y": 1e-300}),
])
def test_an_arithmetic_result_past_the_limit_is_refused(source, variables):
    """Past MAX_NUMBER (10**100) an arithmetic result is 'number too large', float or int."""
    with pytest.raises(ExprRuntimeError) as caught:
        compile_expr(source).evaluate(variables)
    assert "number too large" in str(caught.value)


def test_numbers_up_to_the_limit_still_compute():
    """Money in cents, account numbers and the like are far below the limit."""
    assert compile_expr("x * 10").evaluate({"x": 10 ** 99}) == 10 ** 100
    assert compile_expr("balance_cents / 100").evaluate({"balance_cents": 123456}) == 1234.56


def test_a_huge_number_is_still_a_value_that_can_be_compared():
    """A huge number from the database is not refused until arithmetic makes it larger."""
    assert compile_expr("huge > 5").evaluate(HOSTILE_VARIABLES) is True


def test_rendering_an_object_whose_str_fails_is_a_runtime_error():
    """A service value whose __str__ raises fails as ExprRuntimeError naming the variable."""
    class Weird:
        def __str__(self):
            raise RuntimeError("no text")

    with pytest.raises(ExprRuntimeError) as caught:
        interpolate("hello ${w}", {"w": Weird()})
    assert "'w'" in str(caught.value)
