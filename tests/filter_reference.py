"""An independent Python evaluation of the store's metadata filters, and random records and
filters to check the store against it (the filter tests and the reliability probe use both)."""

from __future__ import annotations

import random

# ---------------------------------------------------------------------- the reference evaluation
_MISSING = object()


def _get(meta, key):
    cur = meta
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "num"
    if v is None:
        return "null"
    return type(v).__name__


def _same(a, b):
    return _kind(a) == _kind(b) and _kind(a) in ("bool", "num", "null", "str") and a == b


def _cmp(val, op, v):
    if _kind(val) != _kind(v) or _kind(v) not in ("num", "str"):
        return False
    return {"$gt": val > v, "$gte": val >= v, "$lt": val < v, "$lte": val <= v}[op]


def _op(val, op, v):
    found = val is not _MISSING
    if op == "$eq":
        return found and _same(val, v)
    if op == "$ne":
        return not _op(val, "$eq", v)
    if op == "$in":
        return found and any(_same(val, x) for x in v)
    if op == "$nin":
        return not _op(val, "$in", v)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return found and _cmp(val, op, v)
    is_list = isinstance(val, list)
    if op == "$contains":
        return is_list and any(_same(e, v) for e in val)
    if op == "$any":
        return is_list and any(_same(e, x) for e in val for x in v)
    if op == "$all":
        return is_list and all(any(_same(e, x) for e in val) for x in v)
    if op == "$text_match":
        return isinstance(val, str) and v in val
    if op == "$text_match_insensitive":
        return isinstance(val, str) and v.lower() in val.lower()
    if op == "$exists":
        return found == v
    if op == "$empty":
        return (not found or val is None or val == "" or val == []) == v
    raise AssertionError(op)


def matches(meta, flt) -> bool:
    """The reference: does ``meta`` satisfy ``flt``, by the documented semantics."""
    for key, cond in flt.items():
        if key == "$and":
            ok = all(matches(meta, f) for f in cond)
        elif key == "$or":
            ok = any(matches(meta, f) for f in cond)
        elif key == "$not":
            ok = not matches(meta, cond)
        elif isinstance(cond, dict):
            ok = all(_op(_get(meta, key), op, v) for op, v in cond.items())
        elif isinstance(cond, list):
            ok = _op(_get(meta, key), "$in", cond)
        else:
            ok = _op(_get(meta, key), "$eq", cond)
        if not ok:
            return False
    return True


# ---------------------------------------------------------------------- records and filters
KEYS = ["n", "s", "b", "x", 'q"k', "b\\k", "nest.a", "nest.deep.z", "tags", "absent"]
SCALARS = [0, 1, 2, -3, 1.0, 2.5, 7, "1", "a", "b", "Éa", "été", "日本", "", True, False, None]


def random_record(rng: random.Random, i: int) -> dict:
    meta: dict = {}
    for key in ("n", "s", "b", "x", 'q"k', "b\\k"):
        if rng.random() < 0.8:
            meta[key] = rng.choice(SCALARS)
    if rng.random() < 0.7:
        meta["nest"] = {"a": rng.choice(SCALARS), "deep": {"z": rng.choice(SCALARS)}}
        if rng.random() < 0.2:
            meta["nest"] = rng.choice(SCALARS)  # not a dict: no nested key matches
    if rng.random() < 0.7:
        meta["tags"] = [rng.choice(SCALARS) for _ in range(rng.randrange(4))]
    meta["i"] = i
    return meta


def _condition(rng: random.Random):
    op = rng.choice(["=", "list", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains",
                     "$any", "$all", "$text_match", "$text_match_insensitive", "$exists", "$empty"])
    if op == "=":
        return rng.choice(SCALARS)
    values = [rng.choice(SCALARS) for _ in range(rng.randrange(1, 4))]
    if op == "list":
        return values
    if op in ("$in", "$nin", "$any", "$all"):
        return {op: values}
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return {op: rng.choice([s for s in SCALARS if _kind(s) in ("num", "str")])}
    if op.startswith("$text"):
        return {op: rng.choice(["a", "É", "é", "t", "1", "日"])}
    if op in ("$exists", "$empty"):
        return {op: rng.random() < 0.5}
    return {op: rng.choice(SCALARS)}


def random_filter(rng: random.Random, depth: int = 0) -> dict:
    flt: dict = {}
    for _ in range(rng.randrange(1, 3)):
        r = rng.random()
        if depth < 3 and r < 0.15:
            flt["$or"] = [random_filter(rng, depth + 1) for _ in range(rng.randrange(1, 3))]
        elif depth < 3 and r < 0.25:
            flt["$and"] = [random_filter(rng, depth + 1) for _ in range(rng.randrange(1, 3))]
        elif depth < 3 and r < 0.35:
            flt["$not"] = random_filter(rng, depth + 1)
        else:
            flt[rng.choice(KEYS)] = _condition(rng)
    return flt
