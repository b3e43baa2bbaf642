"""Metadata filters: parsed into a typed, bounded tree, then compiled to SQL over ``docs.metadata``.

The semantics (LangChain/Chroma-style operators), the same on every search path:

* ``{"key": value}`` is equality; ``{"key": [v1, v2]}`` is ``$in`` (FAISS's shorthand);
  ``{"key": {"$op": value, ...}}`` applies every operator given. Several keys must all hold.
* ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``, ``$nin`` (lists),
  ``$contains`` (the value is a list holding the operand), ``$any`` / ``$all`` (a list holding
  any / all of the operands), ``$text_match`` / ``$text_match_insensitive`` (a string holding
  the operand, case-sensitive or not), ``$exists`` and ``$empty`` (booleans).
* ``$and`` / ``$or`` take a non-empty list of filters, ``$not`` one filter.
* A key is a path: ``"a.b"`` is key ``b`` of the dict under key ``a``. Any other character
  (``"`` and ``\\`` included) is part of the key.
* Comparisons are type-strict: numbers (int or float) compare with numbers, strings with
  strings (by code point); ``true`` equals only ``true`` (never ``1``); ``None`` equals only
  an explicit ``null``; a list or dict never equals a scalar.
* ``$ne``, ``$nin`` and ``$not`` are exact negations: a document lacking the key matches
  ``{"$ne": v}`` and ``{"$nin": [...]}``, and matches no comparison or ``$eq``/``$in``.
* ``$empty: true``: the key is missing, ``null``, ``""`` or ``[]``.

Anything else (an unknown operator, a wrong operand type, ``$in`` with a non-list, an empty
operator dict, NaN, integers beyond 64 bits, keys with NUL or lone surrogates, more than
:data:`MAX_CONDITIONS` conditions...) raises :class:`FilterError` naming what is wrong.

Example:
    >>> where, params = compile_filter({"lang": ["en", "fr"]})
    >>> where.startswith("EXISTS (SELECT 1 FROM json_each(docs.metadata) AS j0"), params
    (True, ['lang', '["en", "fr"]'])
    >>> parse_filter({"meta.year": {"$gte": 2020}, "$not": {"tag": "draft"}}).parts[0]
    Condition(path=('meta', 'year'), op='$gte', value=2020)
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_CONDITIONS = 100
"""The most conditions (leaves) one filter may hold."""
MAX_DEPTH = 8
"""The most levels of ``$and`` / ``$or`` / ``$not`` nesting."""
MAX_KEY_CHARS = 256
"""The longest key path, in characters."""
MAX_PATH_PARTS = 8
"""The most dotted parts of one key path."""
MAX_LIST = 1024
"""The most values in one ``$in`` / ``$nin`` / ``$any`` / ``$all`` list."""
MAX_STRING = 4096
"""The longest string value, in characters."""

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
LIST_OPERATORS = ("$in", "$nin", "$any", "$all")
TEXT_OPERATORS = ("$text_match", "$text_match_insensitive")
BOOL_OPERATORS = ("$exists", "$empty")
FIELD_OPERATORS = COMPARISONS + LIST_OPERATORS + ("$contains",) + TEXT_OPERATORS + BOOL_OPERATORS
"""Every operator on a key."""
LOGICAL_OPERATORS = ("$and", "$or", "$not")
_INT64 = 2**63
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_LOWER = "qwen3_rag_lower"
"""The SQL function (Python's ``str.lower``) that ``$text_match_insensitive`` compiles to."""


class FilterError(ValueError, TypeError):
    """A filter the store cannot evaluate (a ``ValueError``; the service answers 422)."""


@dataclass(frozen=True)
class Condition:
    """One operator on one key path (the operand is validated)."""

    path: tuple[str, ...]
    op: str
    value: Any


@dataclass(frozen=True)
class AllOf:
    """Every part holds."""

    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one part holds."""

    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Negation:
    """The part does not hold."""

    part: Filter


Filter = Condition | AllOf | AnyOf | Negation
"""A parsed filter."""


# ---------------------------------------------------------------------- parsing
def parse_filter(flt: Any) -> Filter:
    """Validate a filter dict into its typed form; raises :class:`FilterError` naming what is wrong."""
    if isinstance(flt, Condition | AllOf | AnyOf | Negation):
        return flt
    budget = [MAX_CONDITIONS]
    return _parse(flt, 0, budget, "filter")


def _parse(flt: Any, depth: int, budget: list[int], where: str) -> Filter:
    if depth > MAX_DEPTH:
        raise FilterError(f"{where}: filters nest at most {MAX_DEPTH} levels of $and/$or/$not")
    if not isinstance(flt, Mapping) or not flt:
        raise FilterError(f"{where} must be a non-empty dict of metadata conditions, got {_show(flt)}")
    if len(flt) > MAX_CONDITIONS:
        raise FilterError(f"{where} has {len(flt)} keys; at most {MAX_CONDITIONS} conditions")
    parts: list[Filter] = []
    for key, cond in flt.items():
        if key in LOGICAL_OPERATORS:
            parts.append(_parse_logical(key, cond, depth, budget, where))
        else:
            parts.append(_parse_field(_path(key), cond, budget))
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _parse_logical(op: str, cond: Any, depth: int, budget: list[int], where: str) -> Filter:
    if op == "$not":
        return Negation(_parse(cond, depth + 1, budget, f"{where} $not"))
    if not isinstance(cond, list | tuple) or not cond:
        raise FilterError(f"{op} needs a non-empty list of filters, got {_show(cond)}")
    if len(cond) > MAX_CONDITIONS:
        raise FilterError(f"{op} has {len(cond)} filters; at most {MAX_CONDITIONS} conditions")
    parts = tuple(_parse(c, depth + 1, budget, f"{where} {op}[{i}]") for i, c in enumerate(cond))
    return AllOf(parts) if op == "$and" else AnyOf(parts)


def _path(key: Any) -> tuple[str, ...]:
    if not isinstance(key, str) or not key:
        raise FilterError(f"filter keys must be non-empty str, got {_show(key)}")
    if len(key) > MAX_KEY_CHARS:
        raise FilterError(f"filter key {key[:40]!r}... is {len(key)} characters; at most {MAX_KEY_CHARS}")
    _check_text(key, "filter key")
    if key.startswith("$"):
        raise FilterError(f"unknown filter operator {key!r}; logical operators are $and, $or and $not")
    parts = tuple(key.split("."))
    if "" in parts:
        raise FilterError(f"filter key {key!r} has an empty part (dots separate nested keys)")
    if len(parts) > MAX_PATH_PARTS:
        raise FilterError(f"filter key {key!r} has {len(parts)} dotted parts; at most {MAX_PATH_PARTS}")
    return parts


def _parse_field(path: tuple[str, ...], cond: Any, budget: list[int]) -> Filter:
    name = ".".join(path)
    if isinstance(cond, Mapping):
        if not cond:
            raise FilterError(f"filter condition for {name!r} is an empty dict: give a value or "
                              "operators such as {'$in': [...]}")
        items = list(cond.items())
    else:
        items = [("$in" if isinstance(cond, list | tuple) else "$eq", cond)]
    parts: list[Filter] = []
    for op, val in items:
        budget[0] -= 1
        if budget[0] < 0:
            raise FilterError(f"the filter holds more than {MAX_CONDITIONS} conditions")
        if op not in FIELD_OPERATORS:
            raise FilterError(f"unknown filter operator {_show(op)} for {name!r}; use "
                              + ", ".join(FIELD_OPERATORS))
        parts.append(Condition(path, op, _operand(op, val, name)))
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _operand(op: str, val: Any, name: str) -> Any:
    if op in LIST_OPERATORS:
        if not isinstance(val, list | tuple):
            raise FilterError(f"filter {op} for {name!r} needs a list, got {_show(val)}")
        if len(val) > MAX_LIST:
            raise FilterError(f"filter {op} for {name!r} has {len(val)} values; at most {MAX_LIST}")
        return tuple(_scalar(v, name) for v in val)
    if op in BOOL_OPERATORS:
        if not isinstance(val, bool):
            raise FilterError(f"filter {op} for {name!r} needs true or false, got {_show(val)}")
        return val
    v = _scalar(val, name)
    if op in TEXT_OPERATORS and not isinstance(v, str):
        raise FilterError(f"filter {op} for {name!r} needs a string, got {_show(val)}")
    if op in ("$gt", "$gte", "$lt", "$lte") and (v is None or isinstance(v, bool)):
        raise FilterError(f"filter {op} for {name!r} needs a number or a string, got {_show(val)}")
    return v


def _scalar(v: Any, name: str) -> Any:
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        if not -_INT64 <= v < _INT64:
            raise FilterError(f"filter value for {name!r} is out of the 64-bit integer range")
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise FilterError(f"filter value for {name!r} must be finite (metadata holds no NaN "
                              f"or infinity), got {v!r}")
        return v
    if isinstance(v, str):
        if len(v) > MAX_STRING:
            raise FilterError(f"filter value for {name!r} is {len(v)} characters; at most {MAX_STRING}")
        _check_text(v, f"filter value for {name!r}")
        return v
    raise FilterError(f"filter value for {name!r} must be a str, number, bool or None, got {_show(v)}")


def _check_text(s: str, what: str) -> None:
    if "\x00" in s:
        raise FilterError(f"{what} {s[:40]!r} contains a NUL character")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise FilterError(f"{what} {s[:40]!r} contains a lone surrogate") from e


def _show(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


# ---------------------------------------------------------------------- SQL
_SAME = ("((a.type = b.type OR (a.type IN ('integer', 'real') AND b.type IN ('integer', 'real'))) "
         "AND a.value IS b.value)")
_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def compile_filter(flt: Any) -> tuple[str, list[Any]]:
    """An SQL condition over ``docs.metadata`` and its parameters, for a filter dict (or a parsed
    :data:`Filter`). A connection evaluating it needs :func:`register_functions`."""
    params: list[Any] = []
    return _sql(parse_filter(flt), params), params


def register_functions(conn: sqlite3.Connection) -> None:
    """Define on ``conn`` the SQL function compiled filters use (``$text_match_insensitive``)."""
    conn.create_function(_LOWER, 1, lambda s: s.lower() if isinstance(s, str) else s, deterministic=True)


def _sql(node: Filter, params: list[Any]) -> str:
    if isinstance(node, AllOf):
        return "(" + " AND ".join(_sql(p, params) for p in node.parts) + ")"
    if isinstance(node, AnyOf):
        return "(" + " OR ".join(_sql(p, params) for p in node.parts) + ")"
    if isinstance(node, Negation):
        return f"(NOT {_sql(node.part, params)})"
    op, v = node.op, node.value
    if op == "$ne":
        return f"(NOT {_sql(Condition(node.path, '$eq', v), params)})"
    if op == "$nin":
        return f"(NOT {_sql(Condition(node.path, '$in', v), params)})"
    if op == "$exists":
        cond = _at(node.path, "1", params)
        return cond if v else f"(NOT {cond})"
    if op == "$empty":
        filled = ("NOT (a.type = 'null' OR (a.type = 'text' AND a.value = '') "
                  "OR (a.type = 'array' AND json_array_length(a.value) = 0))")
        cond = _at(node.path, filled, params)
        return f"(NOT {cond})" if v else cond
    if op == "$eq" and isinstance(v, str) and len(node.path) == 1 and _PLAIN.fullmatch(node.path[0]):
        # a plain key equal to a string: the form an expression index on the key can answer
        params.append(v)
        path = f"'$.{node.path[0]}'"
        # (IS, not =: never NULL, so that NOT of it is exact for a missing key)
        return f"(json_extract(docs.metadata, {path}) IS ? AND json_type(docs.metadata, {path}) IS 'text')"
    return _at(node.path, _leaf(op, v), params, values=_leaf_params(op, v))


def _leaf(op: str, v: Any) -> str:
    """The condition on the value ``a`` (type, value) that the key path points at."""
    if op in ("$eq", "$in"):
        return f"EXISTS (SELECT 1 FROM json_each(?) AS b WHERE {_SAME})"
    if op in _RANGE:
        kinds = "('text')" if isinstance(v, str) else "('integer', 'real')"
        return f"a.type IN {kinds} AND a.value {_RANGE[op]} ?"
    if op in ("$contains", "$any"):
        return (f"a.type = 'array' AND EXISTS (SELECT 1 FROM json_each(a.value) AS e, json_each(?) AS b "
                f"WHERE {_SAME.replace('a.', 'e.')})")
    if op == "$all":
        return (f"a.type = 'array' AND NOT EXISTS (SELECT 1 FROM json_each(?) AS b WHERE NOT EXISTS "
                f"(SELECT 1 FROM json_each(a.value) AS e WHERE {_SAME.replace('a.', 'e.')}))")
    if op == "$text_match":
        return "a.type = 'text' AND instr(a.value, ?) > 0"
    if op == "$text_match_insensitive":
        return f"a.type = 'text' AND instr({_LOWER}(a.value), ?) > 0"
    raise AssertionError(f"no SQL for filter operator {op}")  # parse_filter admits no other


def _leaf_params(op: str, v: Any) -> list[Any]:
    if op in ("$eq", "$contains"):
        return [json.dumps([v])]
    if op in ("$in", "$any", "$all"):
        return [json.dumps(list(v))]
    if op == "$text_match_insensitive":
        return [v.lower()]
    return [v]


def _at(path: tuple[str, ...], cond: str, params: list[Any], values: list[Any] | None = None) -> str:
    """``EXISTS`` a value at ``path`` for which ``cond`` (over alias ``a``: its type and value) holds."""
    joins = ["json_each(docs.metadata) AS j0"]
    wheres = ["j0.key = ?"]
    params.append(path[0])
    for i, part in enumerate(path[1:], start=1):
        joins.append(f"json_each(j{i - 1}.value) AS j{i}")
        wheres += [f"j{i - 1}.type = 'object'", f"j{i}.key = ?"]
        params.append(part)
    alias = f"j{len(path) - 1}"
    params.extend(values or [])
    body = cond.replace("a.", f"{alias}.")
    return f"EXISTS (SELECT 1 FROM {', '.join(joins)} WHERE {' AND '.join(wheres)} AND {body})"


__all__ = [
    "FIELD_OPERATORS", "LOGICAL_OPERATORS", "MAX_CONDITIONS", "MAX_DEPTH", "MAX_KEY_CHARS", "MAX_LIST",
    "MAX_PATH_PARTS", "MAX_STRING", "AllOf", "AnyOf", "Condition", "Filter", "FilterError", "Negation",
    "compile_filter", "parse_filter", "register_functions",
]
