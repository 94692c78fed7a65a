"""The safe expression language of flow files (conditions, ``set`` values, ``${var}``).

Flow files are written by administrators but evaluated on every call, and values
come from callers (digits) and the database: so expressions are parsed by a small
hand-written tokenizer and recursive-descent parser into an AST of a few node
classes, never handed to ``eval``. Compile errors carry the 1-based column inside
the expression; run-time errors are always ``ExprRuntimeError`` (the engine routes
them to the flow's ``on_error``), never a Python exception from the interpreter.

Grammar (lowest precedence first)::

    expr       := or
    or         := and ('or' and)*
    and        := not ('and' not)*
    not        := 'not' not | comparison
    comparison := additive [('=='|'!='|'<'|'<='|'>'|'>='|'in'|'not' 'in') additive]
    additive   := term (('+'|'-') term)*
    term       := unary (('*'|'/'|'%') unary)*
    unary      := '-' unary | primary
    primary    := NUMBER | STRING | 'true' | 'false' | 'none' | NAME
                | FUNCTION '(' [expr (',' expr)*] ')' | '(' expr ')' | '[' [expr (',' expr)* [',']] ']'
"""
from __future__ import annotations

import functools
import numbers
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = [
    "ExprError", "ExprRuntimeError", "Expression", "compile_expr",
    "Template", "compile_template", "interpolate", "template_names",
    "MAX_SOURCE_LENGTH", "MAX_DEPTH", "MAX_NUMBER", "to_text",
]

MAX_SOURCE_LENGTH = 1000   # characters of one expression or template
MAX_DEPTH = 40             # nesting of the syntax tree (parentheses, chained operators)
MAX_NUMBER = 10 ** 100     # magnitude past which an arithmetic result is refused

_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "none"})
_NAME_START = re.compile(r"[A-Za-z_]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
# Things people type from other languages, with the fix.
_WRONG_OPERATORS = {
    "&&": "use 'and'", "||": "use 'or'", "&": "use 'and'", "|": "use 'or'",
    "!": "use 'not'", "=": "use '==' to compare", "**": "there is no power operator",
    "${": "write variable names without ${...} inside an expression",
    ".": "attribute access is not allowed", "{": "mappings are not supported",
}
_KEYWORD_CASE = {"True": "true", "False": "false", "None": "none", "AND": "and",
                 "OR": "or", "NOT": "not", "TRUE": "true", "FALSE": "false", "null": "none"}


class ExprError(Exception):
    """An expression does not compile; ``column`` is 1-based inside the expression."""

    def __init__(self, message: str, column: int):
        self.message = message
        self.column = column
        super().__init__(f"{message} (column {column})")


class ExprRuntimeError(Exception):
    """An expression failed while evaluated (undefined variable, wrong types...)."""


# ---------------------------------------------------------------- tokenizer

@dataclass(frozen=True)
class _Token:
    kind: str      # "num", "str", "name", "op", "end"
    value: Any
    col: int       # 1-based


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        col = i + 1
        if ch in " \t\r\n":
            i += 1
        elif ch.isdigit() and ch.isascii():
            m = _NUMBER.match(source, i)
            assert m is not None
            end = m.end()
            if end < n and source[end] == ".":
                raise ExprError("a decimal number needs digits after '.'", end + 1)
            if end < n and (source[end].isalnum() or source[end] == "_"):
                raise ExprError(f"invalid number {source[i:end + 1]!r}", col)
            text = m.group()
            tokens.append(_Token("num", float(text) if m.group(1) else int(text), col))
            i = end
        elif ch in "'\"":
            value, i = _scan_string(source, i)
            tokens.append(_Token("str", value, col))
        elif _NAME_START.match(ch):
            m = _NAME.match(source, i)
            assert m is not None
            tokens.append(_Token("name", m.group(), col))
            i = m.end()
        else:
            two = source[i:i + 2]
            if two in ("==", "!=", "<=", ">="):
                tokens.append(_Token("op", two, col))
                i += 2
            elif two in _WRONG_OPERATORS:
                raise ExprError(f"unexpected {two!r}: {_WRONG_OPERATORS[two]}", col)
            elif ch in "<>+-*/%()[],":
                tokens.append(_Token("op", ch, col))
                i += 1
            elif ch == ".":
                tokens.append(_Token("op", ch, col))  # the parser says why it is wrong
                i += 1
            elif ch in _WRONG_OPERATORS:
                raise ExprError(f"unexpected {ch!r}: {_WRONG_OPERATORS[ch]}", col)
            else:
                raise ExprError(f"unexpected character {ch!r}", col)
    tokens.append(_Token("end", None, n + 1))
    return tokens


def _scan_string(source: str, start: int) -> tuple[str, int]:
    quote = source[start]
    out: list[str] = []
    i = start + 1
    while i < len(source):
        ch = source[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            nxt = source[i + 1:i + 2]
            if nxt not in _ESCAPES:
                raise ExprError(f"unknown escape '\\{nxt}' in string", i + 1)
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ExprError("unterminated string", start + 1)


# ---------------------------------------------------------------- values

def _type_name(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, (bool, complex))


def to_text(value: Any) -> str:
    """How a value reads when put into text: ``${x}``, ``str(x)``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(to_text(v) for v in value)
    try:
        return str(value)
    except ValueError as exc:   # an int of more than 4300 digits (sys.int_info limit)
        raise ExprRuntimeError(f"{_type_name(value)} too large to write as text ({exc})") from None
    except Exception as exc:    # an odd object from a service whose __str__ fails
        raise ExprRuntimeError(f"{_type_name(value)} cannot be written as text "
                               f"({type(exc).__name__})") from None


# ---------------------------------------------------------------- AST

class _Node:
    col: int = 0
    depth: int = 1

    def evaluate(self, env: Mapping[str, Any]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def names(self) -> set[str]:
        return set()


@dataclass
class _Literal(_Node):
    value: Any
    col: int

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return self.value


@dataclass
class _Name(_Node):
    name: str
    col: int

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        try:
            return env[self.name]
        except KeyError:
            raise ExprRuntimeError(f"undefined variable '{self.name}'") from None

    def names(self) -> set[str]:
        return {self.name}


@dataclass
class _List(_Node):
    items: list[_Node]
    col: int

    def __post_init__(self) -> None:
        self.depth = 1 + max((i.depth for i in self.items), default=0)

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return [item.evaluate(env) for item in self.items]

    def names(self) -> set[str]:
        return set().union(*(i.names() for i in self.items))


@dataclass
class _Negate(_Node):
    operand: _Node
    col: int

    def __post_init__(self) -> None:
        self.depth = self.operand.depth + 1

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        value = self.operand.evaluate(env)
        if not _is_number(value):
            raise ExprRuntimeError(f"cannot negate {_type_name(value)}")
        return -value

    def names(self) -> set[str]:
        return self.operand.names()


@dataclass
class _Not(_Node):
    operand: _Node
    col: int

    def __post_init__(self) -> None:
        self.depth = self.operand.depth + 1

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return not _truthy(self.operand.evaluate(env))

    def names(self) -> set[str]:
        return self.operand.names()


def _truthy(value: Any) -> bool:
    try:
        return bool(value)
    except Exception as exc:  # an odd object from a service: still our error type
        raise ExprRuntimeError(f"{_type_name(value)} cannot be used as true/false") from exc


@dataclass
class _Binary(_Node):
    op: str
    left: _Node
    right: _Node
    col: int

    def __post_init__(self) -> None:
        self.depth = max(self.left.depth, self.right.depth) + 1

    def names(self) -> set[str]:
        return self.left.names() | self.right.names()

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        op = self.op
        if op == "and":
            return _truthy(self.left.evaluate(env)) and _truthy(self.right.evaluate(env))
        if op == "or":
            return _truthy(self.left.evaluate(env)) or _truthy(self.right.evaluate(env))
        a = self.left.evaluate(env)
        b = self.right.evaluate(env)
        try:
            result = _BINARY[op](a, b)
        except ExprRuntimeError:
            raise
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise ExprRuntimeError(f"'{op}' failed on {_type_name(a)} and {_type_name(b)}: {exc}") from None
        if op in _ARITHMETIC:
            _check_size(op, result)
        return result


_ARITHMETIC = frozenset("+-*/%")


def _check_size(op: str, result: Any) -> None:
    """Refuse a number past ``MAX_NUMBER``: chained ``set x = x * x`` steps would
    otherwise grow it to millions of digits, seconds of CPU per step on the reactor."""
    if not _is_number(result):
        return
    try:
        too_large = abs(result) > MAX_NUMBER
    except (ArithmeticError, TypeError, ValueError):
        too_large = True
    if too_large:
        raise ExprRuntimeError(f"number too large: the result of '{op}' is beyond 10**100")


def _both_numbers(op: str, a: Any, b: Any) -> None:
    if not (_is_number(a) and _is_number(b)):
        raise ExprRuntimeError(f"cannot use '{op}' on {_type_name(a)} and {_type_name(b)}")


def _add(a: Any, b: Any) -> Any:
    if _is_number(a) and _is_number(b):
        return a + b
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    if isinstance(a, list) and isinstance(b, list):
        return a + b
    raise ExprRuntimeError(f"cannot add {_type_name(a)} and {_type_name(b)}"
                           + (" (use str(x) to join text and numbers)"
                              if isinstance(a, str) or isinstance(b, str) else ""))


def _arith(op: str, fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        _both_numbers(op, a, b)
        if op in "/%" and b == 0:
            raise ExprRuntimeError("division by zero")
        return fn(a, b)
    return apply


def _order(op: str, fn: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def apply(a: Any, b: Any) -> bool:
        if (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
            return fn(a, b)
        raise ExprRuntimeError(f"cannot compare {_type_name(a)} and {_type_name(b)} with '{op}'")
    return apply


def _contains(a: Any, b: Any) -> bool:
    if isinstance(b, (list, tuple)):
        return any(a == item for item in b)
    if isinstance(b, str):
        if not isinstance(a, str):
            raise ExprRuntimeError(f"cannot look for {_type_name(a)} in text")
        return a in b
    raise ExprRuntimeError(f"'in' needs a list or text on its right, not {_type_name(b)}")


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add,
    "-": _arith("-", lambda a, b: a - b),
    "*": _arith("*", lambda a, b: a * b),
    "/": _arith("/", lambda a, b: a / b),
    "%": _arith("%", lambda a, b: a % b),
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": _order("<", lambda a, b: a < b),
    "<=": _order("<=", lambda a, b: a <= b),
    ">": _order(">", lambda a, b: a > b),
    ">=": _order(">=", lambda a, b: a >= b),
    "in": _contains,
    "not in": lambda a, b: not _contains(a, b),
}


def _need(kind: type | tuple, what: str, fn: str, value: Any) -> None:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ExprRuntimeError(f"{fn}() needs {what}, not {_type_name(value)}")


def _fn_len(value: Any) -> int:
    _need((str, list, tuple), "text or a list", "len", value)
    return len(value)


def _fn_int(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise ExprRuntimeError(f"int() needs a number or digits, not {_type_name(value)}")
    if _is_number(value):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?[0-9]{1,100}", text):
            return int(text)
        raise ExprRuntimeError(f"int() cannot read {value[:40]!r} as a whole number")
    raise ExprRuntimeError(f"int() needs a number or digits, not {_type_name(value)}")


def _fn_lower(value: Any) -> str:
    _need(str, "text", "lower", value)
    return value.lower()


def _fn_startswith(value: Any, prefix: Any) -> bool:
    _need(str, "text", "startswith", value)
    _need(str, "text", "startswith", prefix)
    return value.startswith(prefix)


# name -> (implementation, number of arguments)
_FUNCTIONS: dict[str, tuple[Callable[..., Any], int]] = {
    "len": (_fn_len, 1),
    "int": (_fn_int, 1),
    "str": (to_text, 1),
    "lower": (_fn_lower, 1),
    "startswith": (_fn_startswith, 2),
    "defined": (lambda name: name, 1),  # handled by _Defined
}


@dataclass
class _Call(_Node):
    func: str
    args: list[_Node]
    col: int

    def __post_init__(self) -> None:
        self.depth = 1 + max((a.depth for a in self.args), default=0)

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        fn, _ = _FUNCTIONS[self.func]
        values = [a.evaluate(env) for a in self.args]
        try:
            return fn(*values)
        except ExprRuntimeError:
            raise
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise ExprRuntimeError(f"{self.func}() failed: {exc}") from None

    def names(self) -> set[str]:
        return set().union(*(a.names() for a in self.args))


@dataclass
class _Defined(_Node):
    name: str
    col: int

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return self.name in env


# ---------------------------------------------------------------- parser

_COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}


class _Parser:
    def __init__(self, source: str):
        self.tokens = _tokenize(source)
        self.pos = 0
        self.nesting = 0
        self.name_columns: dict[str, int] = {}

    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def at(self, kind: str, value: Any = None) -> bool:
        tok = self.tok
        return tok.kind == kind and (value is None or tok.value == value)

    def at_keyword(self, word: str) -> bool:
        return self.at("name", word)

    def expect_op(self, value: str, what: str) -> _Token:
        if not self.at("op", value):
            raise ExprError(f"expected {value!r} {what}, found {self.describe(self.tok)}", self.tok.col)
        return self.advance()

    @staticmethod
    def describe(tok: _Token) -> str:
        if tok.kind == "end":
            return "the end of the expression"
        if tok.kind == "str":
            return "a string"
        return repr(str(tok.value))

    def check_depth(self, node: _Node) -> _Node:
        if node.depth > MAX_DEPTH:
            raise ExprError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)", node.col)
        return node

    def parse(self) -> _Node:
        node = self.parse_or()
        if not self.at("end"):
            tok = self.tok
            if tok.kind == "op" and tok.value == ".":
                raise ExprError("attribute access is not allowed", tok.col)
            if tok.kind == "op" and tok.value == "[":
                raise ExprError("indexing with [...] is not supported", tok.col)
            if tok.kind == "op" and tok.value == "(":
                raise ExprError("only the built-in functions can be called", tok.col)
            if tok.kind == "op" and tok.value in _COMPARISONS | {"in"}:
                raise ExprError("comparisons cannot be chained; join them with 'and'", tok.col)
            if tok.kind == "name" and tok.value == "in":
                raise ExprError("comparisons cannot be chained; join them with 'and'", tok.col)
            raise ExprError(f"unexpected {self.describe(tok)}", tok.col)
        return node

    def binary_loop(self, operand: Callable[[], _Node], ops: set[str], keyword: bool) -> _Node:
        left = operand()
        while (self.tok.kind == ("name" if keyword else "op")) and self.tok.value in ops:
            tok = self.advance()
            right = operand()
            left = self.check_depth(_Binary(tok.value, left, right, tok.col))
        return left

    def parse_or(self) -> _Node:
        return self.binary_loop(self.parse_and, {"or"}, keyword=True)

    def parse_and(self) -> _Node:
        return self.binary_loop(self.parse_not, {"and"}, keyword=True)

    def parse_not(self) -> _Node:
        if self.at_keyword("not"):
            tok = self.advance()
            return self.check_depth(_Not(self.nested(self.parse_not), tok.col))
        return self.parse_comparison()

    def parse_comparison(self) -> _Node:
        left = self.parse_additive()
        tok = self.tok
        op = None
        if tok.kind == "op" and tok.value in _COMPARISONS:
            op = tok.value
            self.advance()
        elif self.at_keyword("in"):
            op = "in"
            self.advance()
        elif self.at_keyword("not") and self.tokens[self.pos + 1].kind == "name" \
                and self.tokens[self.pos + 1].value == "in":
            op = "not in"
            self.pos += 2
        if op is None:
            return left
        right = self.parse_additive()
        return self.check_depth(_Binary(op, left, right, tok.col))

    def parse_additive(self) -> _Node:
        return self.binary_loop(self.parse_term, {"+", "-"}, keyword=False)

    def parse_term(self) -> _Node:
        return self.binary_loop(self.parse_unary, {"*", "/", "%"}, keyword=False)

    def parse_unary(self) -> _Node:
        if self.at("op", "-"):
            tok = self.advance()
            return self.check_depth(_Negate(self.nested(self.parse_unary), tok.col))
        return self.parse_primary()

    def nested(self, parse: Callable[[], _Node]) -> _Node:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise ExprError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)", self.tok.col)
        try:
            return parse()
        finally:
            self.nesting -= 1

    def parse_primary(self) -> _Node:
        tok = self.tok
        if tok.kind in ("num", "str"):
            self.advance()
            return _Literal(tok.value, tok.col)
        if tok.kind == "name":
            return self.parse_name()
        if tok.kind == "op" and tok.value == "(":
            self.advance()
            node = self.nested(self.parse_or)
            self.expect_op(")", "to close the '(' at column %d" % tok.col)
            return node
        if tok.kind == "op" and tok.value == "[":
            return self.parse_list()
        if tok.kind == "end":
            raise ExprError("unexpected end of expression: a value is missing", tok.col)
        if tok.kind == "op" and tok.value == ".":
            raise ExprError("a decimal number needs digits before '.'", tok.col)
        raise ExprError(f"expected a value, found {self.describe(tok)}", tok.col)

    def parse_name(self) -> _Node:
        tok = self.advance()
        name = tok.value
        if name == "true":
            return _Literal(True, tok.col)
        if name == "false":
            return _Literal(False, tok.col)
        if name == "none":
            return _Literal(None, tok.col)
        if name in _KEYWORDS:
            raise ExprError(f"expected a value, found {name!r}", tok.col)
        if self.at("op", "("):
            return self.parse_call(tok)
        if name in _KEYWORD_CASE:
            raise ExprError(f"unknown name {name!r}: did you mean {_KEYWORD_CASE[name]!r}?", tok.col)
        if self.at("op", "."):
            raise ExprError("attribute access is not allowed", self.tok.col)
        self.name_columns.setdefault(name, tok.col)
        return _Name(name, tok.col)

    def parse_call(self, name_tok: _Token) -> _Node:
        name = name_tok.value
        if name not in _FUNCTIONS:
            known = ", ".join(sorted(_FUNCTIONS))
            raise ExprError(f"unknown function {name!r} (functions: {known})", name_tok.col)
        open_tok = self.advance()
        args: list[_Node] = []
        if not self.at("op", ")"):
            while True:
                args.append(self.nested(self.parse_or))
                if not self.at("op", ","):
                    break
                self.advance()
        self.expect_op(")", f"to close the call of {name}() at column {open_tok.col}")
        _, arity = _FUNCTIONS[name]
        if len(args) != arity:
            plural = "argument" if arity == 1 else "arguments"
            raise ExprError(f"{name}() takes {arity} {plural}, got {len(args)}", name_tok.col)
        if name == "defined":
            arg = args[0]
            if not (isinstance(arg, _Literal) and isinstance(arg.value, str)):
                raise ExprError("defined() takes a quoted variable name, e.g. defined('account')", arg.col)
            return _Defined(arg.value, name_tok.col)
        return self.check_depth(_Call(name, args, name_tok.col))

    def parse_list(self) -> _Node:
        open_tok = self.advance()
        items: list[_Node] = []
        while not self.at("op", "]"):
            items.append(self.nested(self.parse_or))
            if self.at("op", ","):
                self.advance()
                continue
            if not self.at("op", "]"):
                raise ExprError(f"expected ',' or ']' in the list opened at column {open_tok.col}, "
                                f"found {self.describe(self.tok)}", self.tok.col)
        self.advance()
        return self.check_depth(_List(items, open_tok.col))


class Expression:
    """A compiled expression: evaluate it against the session's variables."""

    __slots__ = ("source", "_root", "names", "positions")

    def __init__(self, source: str, root: _Node, positions: dict[str, int]):
        self.source = source
        self._root = root
        self.names: frozenset[str] = frozenset(root.names())
        self.positions = positions   # name -> 1-based column where it is first read

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """The value; any failure is an ``ExprRuntimeError`` naming the expression."""
        try:
            return self._root.evaluate(variables)
        except ExprRuntimeError as exc:
            raise ExprRuntimeError(f"{exc} in expression {self.source!r}") from None
        except (ArithmeticError, TypeError, ValueError, RecursionError) as exc:
            raise ExprRuntimeError(f"{type(exc).__name__}: {exc} in expression {self.source!r}") from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile_expr(source: str) -> Expression:
    """Parse ``source``; raises ``ExprError(message, column)`` when it is not valid."""
    if not isinstance(source, str):
        raise ExprError(f"an expression must be text, not {_type_name(source)}", 1)
    return _compile_expr(source)


@functools.lru_cache(maxsize=2048)
def _compile_expr(source: str) -> Expression:
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExprError(f"expression is too long ({len(source)} characters, at most {MAX_SOURCE_LENGTH})",
                        MAX_SOURCE_LENGTH + 1)
    if not source.strip():
        raise ExprError("empty expression", 1)
    parser = _Parser(source)
    root = parser.parse()
    return Expression(source, root, parser.name_columns)


# ---------------------------------------------------------------- ${var} templates

_PLACEHOLDER_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


class Template:
    """Text with ``${var}`` placeholders, split once into literal and variable parts."""

    __slots__ = ("source", "_parts", "names", "positions")

    def __init__(self, source: str, parts: list[tuple[bool, str]], positions: dict[str, int]):
        self.source = source
        self._parts = parts            # (is_variable, text or name)
        self.names: frozenset[str] = frozenset(name for is_var, name in parts if is_var)
        self.positions = positions     # name -> 1-based column of its first "${"

    def render(self, variables: Mapping[str, Any]) -> str:
        out: list[str] = []
        for is_var, text in self._parts:
            if not is_var:
                out.append(text)
                continue
            try:
                value = variables[text]
            except KeyError:
                raise ExprRuntimeError(f"undefined variable '{text}' in text {self.source[:60]!r}") from None
            try:
                out.append(to_text(value))
            except ExprRuntimeError as exc:
                raise ExprRuntimeError(f"'{text}': {exc} in text {self.source[:60]!r}") from None
        return "".join(out)


def compile_template(text: str) -> Template:
    """Split ``text`` on ``${name}``; raises ``ExprError`` for an unclosed or empty ``${``."""
    if not isinstance(text, str):
        raise ExprError(f"a text must be text, not {_type_name(text)}", 1)
    return _compile_template(text)


@functools.lru_cache(maxsize=2048)
def _compile_template(text: str) -> Template:
    if len(text) > 10 * MAX_SOURCE_LENGTH:
        raise ExprError(f"text is too long ({len(text)} characters, at most {10 * MAX_SOURCE_LENGTH})", 1)
    parts: list[tuple[bool, str]] = []
    positions: dict[str, int] = {}
    i = 0
    while True:
        start = text.find("${", i)
        if start < 0:
            if i < len(text):
                parts.append((False, text[i:]))
            break
        if start > i:
            parts.append((False, text[i:start]))
        close = text.find("}", start + 2)
        if close < 0:
            raise ExprError("'${' is never closed with '}'", start + 1)
        m = _PLACEHOLDER_NAME.match(text, start + 2)
        if not m or m.end() != close + 1:
            inner = text[start + 2:close]
            raise ExprError(f"'${{{inner}}}' must hold just a variable name, like ${{caller_id}}", start + 1)
        name = m.group(1)
        parts.append((True, name))
        positions.setdefault(name, start + 1)
        i = close + 1
    return Template(text, parts, positions)


def interpolate(text: str, variables: Mapping[str, Any]) -> str:
    """``text`` with every ``${name}`` replaced by the variable's value (none -> empty)."""
    return compile_template(text).render(variables)


def template_names(text: str) -> set[str]:
    """Variables a text reads through ``${name}``."""
    return set(compile_template(text).names)
