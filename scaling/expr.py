"""Expressions over table columns (`--where`, `--derive`, and specs that hold expressions).

They are data, never code: the text is parsed into a Python AST and only a whitelist of node
types is evaluated, against the table's columns and nothing else. There is no access to
Python names, attributes, subscripts, lambdas or arbitrary calls, so an expression such as
`N > 0 or @pd.io.common.os.system("...")` (which pandas' `query` would run) is an error.

Allowed: column names (backticks for names that are not identifiers: `Model Size`), numeric
and string literals, `+ - * / ** %`, unary minus, comparisons (chained too), `and` / `or` /
`not`, `in` / `not in` over a literal list, parentheses, and the functions in FUNCTIONS.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from scaling.errors import DataError, did_you_mean

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "log": np.log, "log10": np.log10, "log2": np.log2, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs,
}
REDUCERS = {"min": (np.min, np.minimum), "max": (np.max, np.maximum)}
"""min/max of one column reduce it; of several arguments they act elementwise."""

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow, ast.Mod: operator.mod}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_BACKTICK = re.compile(r"`([^`]*)`")
_ASSIGN = re.compile(r"^\s*(`[^`]+`|[A-Za-z_][A-Za-z_0-9]*)\s*=(?!=)(.*)$", re.S)


class _Expr:
    """A parsed, checked expression; `evaluate(df)` computes it over the columns of `df`."""

    def __init__(self, text: str, what: str):
        self.text, self.what = text, what
        self.aliases: dict[str, str] = {}

        def alias(m: re.Match) -> str:
            name = f"_backtick_{len(self.aliases)}"
            self.aliases[name] = m.group(1)
            return name

        source = _BACKTICK.sub(alias, text)
        self.source = source
        if "@" in _strip_strings(source):
            raise DataError(f"{what} {text!r}: `@` (a reference to a Python variable) is not allowed; "
                            "expressions see only the table's columns")
        try:
            self.tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as e:
            raise DataError(f"{what} {text!r} is not a valid expression: {e.msg}") from None
        for node in ast.walk(self.tree):
            self._check(node)

    def _piece(self, node: ast.AST) -> str:
        seg = ast.get_source_segment(self.source.strip(), node) or type(node).__name__
        return _unalias(seg, self.aliases)

    def _refuse(self, node: ast.AST, why: str) -> DataError:
        return DataError(f"{self.what} {self.text!r}: {why} `{self._piece(node)}` is not allowed "
                         f"(only columns, literals, arithmetic, comparisons, and/or/not, `in [...]` "
                         f"and the functions {', '.join([*FUNCTIONS, *REDUCERS])})")

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            raise self._refuse(node, "the dunder name")
        if isinstance(node, (ast.Expression, ast.Load, ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.In,
                             ast.NotIn, ast.BoolOp, ast.Compare, ast.Name, *_BINARY, *_COMPARE)):
            return
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise self._refuse(node, "the operator in")
            return
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
                raise self._refuse(node, "the operator in")
            return
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (bool, int, float, str)):
                return
            raise self._refuse(node, "the literal")
        if isinstance(node, (ast.List, ast.Tuple)):
            if all(isinstance(e, ast.Constant) or _is_negative_number(e) for e in node.elts):
                return
            raise self._refuse(node, "a list may hold only literals;")
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in FUNCTIONS and name not in REDUCERS:
                raise self._refuse(node, "the call")
            if node.keywords or not node.args or any(isinstance(a, ast.Starred) for a in node.args):
                raise self._refuse(node, "the call (positional arguments only)")
            if name in FUNCTIONS and len(node.args) != 1:
                raise self._refuse(node, f"`{name}` takes one argument;")
            return
        if isinstance(node, ast.Attribute):
            dotted = _dotted_name(node)
            hint = "" if dotted is None or "__" in dotted else \
                f" (a column named {dotted} is written in backticks: `{dotted}`)"
            raise DataError(str(self._refuse(node, "the attribute access")) + hint)
        if isinstance(node, ast.Subscript):
            raise self._refuse(node, "the subscript")
        if isinstance(node, ast.Lambda):
            raise self._refuse(node, "the lambda")
        raise self._refuse(node, f"the {type(node).__name__.lower()}")

    def evaluate(self, df: pd.DataFrame) -> Any:
        with np.errstate(all="ignore"):
            return self._eval(self.tree.body, df)

    def _eval(self, node: ast.AST, df: pd.DataFrame) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            col = self.aliases.get(node.id, node.id)
            if col not in df.columns:
                raise DataError(f"{self.what} {self.text!r}: unknown column `{col}`{did_you_mean(col, df.columns)}; "
                                f"columns are: {', '.join(map(str, df.columns))}")
            return df[col]
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self._eval(node.left, df), self._eval(node.right, df))
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, df)
            if isinstance(node.op, ast.Not):
                return ~_as_bool(v) if isinstance(v, pd.Series) else not v
            return -v if isinstance(node.op, ast.USub) else +v
        if isinstance(node, ast.BoolOp):
            values = [self._eval(v, df) for v in node.values]
            out = values[0]
            for v in values[1:]:
                if isinstance(node.op, ast.And):
                    out = _as_bool(out) & _as_bool(v)
                else:
                    out = _as_bool(out) | _as_bool(v)
            return out
        if isinstance(node, ast.Compare):
            return self._compare(node, df)
        if isinstance(node, ast.Call):
            args = [self._eval(a, df) for a in node.args]
            name = node.func.id  # type: ignore[attr-defined]
            if name in FUNCTIONS:
                return FUNCTIONS[name](args[0])
            reduce, elementwise = REDUCERS[name]
            if len(args) == 1:
                return reduce(args[0])
            out = args[0]
            for a in args[1:]:
                out = elementwise(out, a)
            return out
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self._eval(e, df) for e in node.elts]
        raise self._refuse(node, "the expression")  # unreachable: _check refused it

    def _compare(self, node: ast.Compare, df: pd.DataFrame) -> Any:
        result = None
        left = self._eval(node.left, df)
        for op, right_node in zip(node.ops, node.comparators):
            right = self._eval(right_node, df)
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right_node, (ast.List, ast.Tuple)):
                    raise self._refuse(right_node, "`in` needs a literal list, so")
                part = left.isin(right) if isinstance(left, pd.Series) else left in right
                if isinstance(op, ast.NotIn):
                    part = ~part if isinstance(part, pd.Series) else not part
            else:
                part = _COMPARE[type(op)](left, right)
            result = part if result is None else _as_bool(result) & _as_bool(part)
            left = right
        return result


def _dotted_name(node: ast.AST) -> str | None:
    """`train.lr` for the attribute access a.b.c written for a column named "a.b.c", else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def _is_negative_number(node: ast.AST) -> bool:
    return (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float)))


def _as_bool(v: Any) -> Any:
    return v.astype(bool) if isinstance(v, pd.Series) else bool(v)


def _strip_strings(source: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"", "''", source)


def _unalias(text: str, aliases: dict[str, str]) -> str:
    for name, col in aliases.items():
        text = text.replace(name, f"`{col}`")
    return text


def compile_expr(text: str, what: str = "expression") -> _Expr:
    """Parse and check `text` once (raises DataError on anything outside the whitelist)."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{what} must be a non-empty expression, got {text!r}")
    return _Expr(text, what)


def evaluate(text: str, df: pd.DataFrame, what: str = "expression") -> Any:
    """The value of expression `text` over the columns of `df` (a Series, or a scalar)."""
    return compile_expr(text, what).evaluate(df)


def filter_rows(df: pd.DataFrame, where: str, what: str = "--where") -> pd.DataFrame:
    """The rows of `df` where the boolean expression `where` holds."""
    mask = evaluate(where, df, what)
    if isinstance(mask, pd.Series) and mask.dtype == bool:
        return df[mask]
    if isinstance(mask, (bool, np.bool_)):
        return df if mask else df.iloc[0:0]
    raise DataError(f"{what} {where!r} must be a condition (true or false per row), e.g. 'N > 1e6'")


def derive_column(df: pd.DataFrame, assignment: str, what: str = "--derive") -> pd.DataFrame:
    """A copy of `df` with the column defined by "name = expression" added (or replaced)."""
    m = _ASSIGN.match(assignment or "")
    if not m or not m.group(2).strip():
        raise DataError(f"{what} {assignment!r} must look like 'name = expression'")
    name = m.group(1).strip("`")
    value = evaluate(m.group(2), df, what)
    out = df.copy()
    out[name] = value
    return out


__all__ = ["FUNCTIONS", "compile_expr", "derive_column", "evaluate", "filter_rows"]
