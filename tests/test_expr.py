"""The safe expression language: values, precedence, compile errors with columns, run-time errors."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.expr import (MAX_DEPTH, MAX_SOURCE_LENGTH, ExprError, ExprRuntimeError, compile_expr,
                      compile_template, interpolate, template_names)

VARS = {"tier": "vip", "digits": "1234", "n": 7, "x": 2.5, "flag": True, "nothing": None,
        "items": ["a", "b"], "name": "Ada"}


@pytest.mark.parametrize("source, value", [
    ("1", 1),
    ("2.50", 2.5),
    ("'single'", "single"),
    ("\"double\"", "double"),
    ("'esc\\'aped'", "esc'aped"),
    ("true", True),
    ("false", False),
    ("none", None),
    ("[1, 'a', [true]]", [1, "a", [True]]),
    ("[]", []),
    ("[1, 2,]", [1, 2]),
    ("n", 7),
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("10 - 4 - 3", 3),
    ("7 / 2", 3.5),
    ("7 % 3", 1),
    ("-n * 2", -14),
    ("- -3", 3),
    ("'a' + 'b'", "ab"),
    ("items + ['c']", ["a", "b", "c"]),
    ("n == 7", True),
    ("n != 7", False),
    ("n < 8 and n >= 7", True),
    ("'abc' < 'abd'", True),
    ("tier == 'vip' or n > 100", True),
    ("not flag", False),
    ("not n == 7", False),                 # not binds looser than ==
    ("not flag or flag", True),            # (not flag) or flag
    ("flag and not flag", False),
    ("true or false and false", True),     # and binds tighter than or
    ("'a' in items", True),
    ("'c' not in items", True),
    ("'23' in digits", True),
    ("len(digits)", 4),
    ("len(items) + 1", 3),
    ("int(digits) + 1", 1235),
    ("int(' -12 ')", -12),
    ("int(x)", 2),
    ("str(n) + '!'", "7!"),
    ("str(flag)", "true"),
    ("str(nothing)", ""),
    ("lower('ABC')", "abc"),
    ("startswith(digits, '12')", True),
    ("defined('tier')", True),
    ("defined('missing')", False),
    ("nothing == none", True),
    ("n > 5 and tier in ['vip', 'key']", True),
])
def test_expression_values(source, value):
    """Each expression evaluates to the value Python's rules for the same text would give."""
    assert compile_expr(source).evaluate(VARS) == value


@pytest.mark.parametrize("source, column, words", [
    ("1 +", 4, "unexpected end"),
    ("(1 + 2", 7, "expected ')'"),
    ("a.b", 2, "attribute access"),
    ("name.__class__", 5, "attribute access"),
    ("open('x')", 1, "unknown function 'open'"),
    ("__import__('os')", 1, "unknown function"),
    ("items[0]", 6, "indexing"),
    ("(n)(1)", 4, "only the built-in functions"),
    ("a < b < c", 7, "cannot be chained"),
    ("'abc", 1, "unterminated string"),
    ("a = 1", 3, "use '=='"),
    ("a && b", 3, "use 'and'"),
    ("a || b", 3, "use 'or'"),
    ("!a", 1, "use 'not'"),
    ("${x} == 1", 1, "without ${...}"),
    ("len(1, 2)", 1, "takes 1 argument"),
    ("startswith('a')", 1, "takes 2 arguments"),
    ("defined(tier)", 9, "quoted variable name"),
    ("True", 1, "did you mean 'true'"),
    ("1..2", 2, "digits after '.'"),
    ("12abc", 1, "invalid number"),
    ("'a\\q'", 3, "unknown escape"),
    ("n @ 2", 3, "unexpected character '@'"),
    ("", 1, "empty expression"),
    ("[1, 2", 6, "expected ',' or ']'"),
    ("1 2", 3, "unexpected '2'"),
    ("'it''s'", 5, "unexpected a string"),
    ("and", 1, "expected a value"),
])
def test_compile_errors_carry_the_column(source, column, words):
    """A compile error says what is wrong and at which 1-based column of the expression."""
    with pytest.raises(ExprError) as info:
        compile_expr(source)
    assert info.value.column == column
    assert words in info.value.message


@pytest.mark.parametrize("source, variables, words", [
    ("missing + 1", {}, "undefined variable 'missing'"),
    ("'a' < 1", {}, "cannot compare text and number"),
    ("1 / 0", {}, "division by zero"),
    ("5 % 0", {}, "division by zero"),
    ("1 + 'a'", {}, "cannot add number and text"),
    ("-'a'", {}, "cannot negate text"),
    ("int('12x')", {}, "cannot read '12x'"),
    ("int(none)", {}, "int() needs"),
    ("len(5)", {}, "len() needs"),
    ("lower(5)", {}, "lower() needs"),
    ("1 in 5", {}, "needs a list or text"),
    ("1 in 'abc'", {}, "cannot look for number in text"),
    ("true * 2", {}, "cannot use '*'"),
    ("x > 1", {"x": None}, "cannot compare none and number"),
    ("x * 1.5", {"x": 10 ** 400}, "failed"),   # OverflowError from int -> float
])
def test_runtime_errors_are_only_expr_runtime_error(source, variables, words):
    """Every failure while evaluating is an ExprRuntimeError naming the problem and the expression."""
    with pytest.raises(ExprRuntimeError) as info:
        compile_expr(source).evaluate(variables)
    assert words in str(info.value)
    assert source in str(info.value)


def test_names_are_the_variables_read():
    """`names` lists the variables an expression reads, not the argument of defined()."""
    expression = compile_expr("defined('account') and len(account) > min_len or tier == 'vip'")
    assert expression.names == frozenset({"account", "min_len", "tier"})


def test_and_or_short_circuit():
    """The right side of and/or is not evaluated when the left side decides (no undefined error)."""
    assert compile_expr("false and missing").evaluate({}) is False
    assert compile_expr("true or missing").evaluate({}) is True
    assert compile_expr("defined('x') and x > 1").evaluate({}) is False


def test_too_long_expression_is_refused():
    """An expression longer than MAX_SOURCE_LENGTH is a compile error, not a slow parse."""
    with pytest.raises(ExprError, match="too long"):
        compile_expr("1" + " + 1" * MAX_SOURCE_LENGTH)


@pytest.mark.parametrize("source", [
    "(" * (MAX_DEPTH + 5) + "1" + ")" * (MAX_DEPTH + 5),
    "not " * (MAX_DEPTH + 5) + "true",
    "-" * (MAX_DEPTH + 5) + "1",
    "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5),
    " + ".join(["1"] * (MAX_DEPTH + 5)),
])
def test_deep_nesting_is_refused(source):
    """Nesting beyond MAX_DEPTH is a compile error, never a RecursionError."""
    with pytest.raises(ExprError, match="nested too deeply"):
        compile_expr(source)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_only_ever_raises_expr_error(source):
    """compile_expr on any text returns an Expression or raises ExprError, nothing else."""
    try:
        expression = compile_expr(source)
    except ExprError as exc:
        assert 1 <= exc.column <= len(source) + 1
        return
    try:
        expression.evaluate(VARS)
    except ExprRuntimeError:
        pass


_TOKENS = st.sampled_from(["1", "2.5", "'a'", "n", "tier", "items", "none", "true", "(", ")", "[", "]",
                           ",", "+", "-", "*", "/", "%", "==", "<", ">=", "and", "or", "not", "in",
                           "len(", "int(", "str(", "lower(", "startswith(", "defined('n')"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_TOKENS, max_size=25))
def test_token_soup_only_ever_raises_expr_errors(tokens):
    """Near-valid token sequences compile or fail with ExprError, and evaluate or fail with ExprRuntimeError."""
    source = " ".join(tokens)
    try:
        expression = compile_expr(source)
    except ExprError:
        return
    try:
        expression.evaluate(VARS)
    except ExprRuntimeError:
        pass


def test_interpolate_replaces_variables():
    """`${name}` is replaced by the value; none becomes empty text and booleans true/false."""
    text = "Hello ${name}, ${ n } new, vip=${flag}, note=${nothing}."
    assert interpolate(text, VARS) == "Hello Ada, 7 new, vip=true, note=."


def test_interpolate_undefined_variable_is_a_runtime_error():
    """A missing variable in text raises ExprRuntimeError naming it."""
    with pytest.raises(ExprRuntimeError, match="undefined variable 'who'"):
        interpolate("Hi ${who}", {})


def test_template_names():
    """template_names lists each variable read by the text once."""
    assert template_names("${a} and ${b} and ${a}, costs $5") == {"a", "b"}


@pytest.mark.parametrize("text, column, words", [
    ("Hello ${name", 7, "never closed"),
    ("${}", 1, "just a variable name"),
    ("x ${a + b}", 3, "just a variable name"),
])
def test_template_errors_carry_the_column(text, column, words):
    """A broken `${` is a compile error at the column of the `${`."""
    with pytest.raises(ExprError) as info:
        compile_template(text)
    assert info.value.column == column
    assert words in info.value.message


@pytest.mark.parametrize("value", [5, None, ["a"], {"a": 1}])
def test_non_text_source_is_an_expr_error(value):
    """compile_expr and compile_template refuse non-text with ExprError, not TypeError."""
    with pytest.raises(ExprError):
        compile_expr(value)
    with pytest.raises(ExprError):
        compile_template(value)
