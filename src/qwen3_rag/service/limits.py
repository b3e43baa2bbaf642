"""The service's input limits: the one dependency that checks them, and their OpenAPI values.

The request models (:mod:`qwen3_rag.service.schemas`) mark every field whose bound one
service sets with :class:`~qwen3_rag.service.schemas.Limit` (or ``InputsLimit`` on an
``input``). :class:`WithinLimits` is the dependency the routes take their request body
through: it finds those marks, checks the values against the app's
:class:`~qwen3_rag.service.schemas.RequestBounds` and answers like a validation error
(413 for sizes, 422 otherwise). :func:`document_limits` writes the same bounds into the
app's OpenAPI schema.

Example:
    >>> from qwen3_rag.service.schemas import RerankRequest, RequestBounds, ServiceLimits
    >>> bounds = RequestBounds.of(ServiceLimits(max_documents=2, max_chars=8), dimension=64,
    ...                           min_dimensions=32, embed_tokens=16, embed_vocab=100)
    >>> req = RerankRequest(query="q", documents=["a", "b", "far too long"])
    >>> [(e["loc"], e["type"]) for e in limit_errors(req, bounds)]
    [(['body', 'documents'], 'too_long'), (['body', 'documents', 2], 'string_too_long')]
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

from fastapi import Depends
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from pydantic_core import PydanticCustomError, PydanticKnownError

from qwen3_rag.service.schemas import (
    LIMITS_KEY,
    TOO_LARGE,
    Inputs,
    InputsLimit,
    Limit,
    RequestBounds,
)
from qwen3_rag.service.state import ServiceState, service_state

Loc = tuple[str | int, ...]


class WithinLimits:
    """Dependency: the request body as ``model``, checked against the app's bounds.

    Use it as ``req: Annotated[RerankRequest, Depends(WithinLimits(RerankRequest))]``: FastAPI
    validates the body as ``model`` (and documents it), then this checks every
    :class:`~qwen3_rag.service.schemas.Limit`-marked field and raises
    ``RequestValidationError`` listing the values over their bounds.
    """

    def __init__(self, model: type[BaseModel]):
        self.model = model
        # FastAPI reads a dependency's parameters from its signature: the body is a ``model``
        self.__signature__ = inspect.Signature([
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model),
            inspect.Parameter("state", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              annotation=Annotated[ServiceState, Depends(service_state)]),
        ])

    async def __call__(self, body: BaseModel, state: ServiceState) -> BaseModel:
        errors = limit_errors(body, state.bounds)
        if errors:
            raise RequestValidationError(errors)
        return body


def limit_errors(req: BaseModel, bounds: RequestBounds) -> list[dict[str, Any]]:
    """Every value of ``req`` over its bound, as validation errors (``loc``, ``msg``, ``type``)."""
    errors = []
    for name, info in type(req).model_fields.items():
        value = getattr(req, name)
        for loc, e in _violations(value, info.annotation, info.metadata, ("body", name), bounds):
            errors.append({"loc": list(loc), "msg": e.message(), "type": e.type})
    return errors


Violation = tuple[Loc, PydanticKnownError | PydanticCustomError]


def _violations(value: Any, annotation: Any, metadata: Sequence[Any], loc: Loc,
                bounds: RequestBounds) -> Iterator[Violation]:
    """Walk ``annotation`` along ``value`` (lists item by item, the union member it is),
    checking the marks met on the way."""
    for mark in metadata:
        if isinstance(mark, Limit):
            yield from _limit_violations(mark, value, loc, bounds)
        elif isinstance(mark, InputsLimit) and isinstance(value, Inputs):
            yield from _inputs_violations(mark, value, loc, bounds)
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *marks = typing.get_args(annotation)
        yield from _violations(value, base, marks, loc, bounds)
    elif origin is list and isinstance(value, list):
        (item,) = typing.get_args(annotation)
        for i, v in enumerate(value):
            yield from _violations(v, item, (), (*loc, i), bounds)
    elif origin in (typing.Union, types.UnionType):
        member = next((m for m in typing.get_args(annotation) if _is_instance(value, m)), None)
        if member is not None:
            yield from _violations(value, member, (), loc, bounds)


def _is_instance(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is what the union member ``annotation`` validated (bool is not int)."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    base = typing.get_origin(annotation) or annotation
    if base in (int, bool):
        return type(value) is base
    return isinstance(base, type) and isinstance(value, base)


def _limit_violations(mark: Limit, value: Any, loc: Loc, bounds: RequestBounds) -> Iterator[Violation]:
    n = getattr(bounds, mark.bound)
    if mark.keyword == "maxLength" and isinstance(value, str) and len(value) > n:
        yield loc, PydanticKnownError("string_too_long", {"max_length": n})
    elif mark.keyword == "maxItems" and isinstance(value, list) and len(value) > n:
        yield loc, PydanticKnownError("too_long", {"field_type": "List", "max_length": n,
                                                   "actual_length": len(value)})
    elif type(value) is int and mark.keyword == "maximum" and value > n:
        yield loc, PydanticKnownError("less_than_equal", {"le": n})
    elif type(value) is int and mark.keyword == "minimum" and value < n:
        yield loc, PydanticKnownError("greater_than_equal", {"ge": n})


def _inputs_violations(mark: InputsLimit, inputs: Inputs, loc: Loc,
                       bounds: RequestBounds) -> Iterator[Violation]:
    """The first bound ``inputs`` exceed: item count, then characters or tokens, then token ids."""
    items = inputs.to_json()
    if len(items) > bounds.max_inputs:
        yield loc, _too_large(f"input has {len(items)} items, at most {bounds.max_inputs} are allowed")
        return
    for i, s in enumerate(inputs.texts or ()):
        if len(s) > bounds.max_chars:
            yield loc, _too_large(f"input[{i}] has {len(s)} characters, at most {bounds.max_chars} are "
                                  "allowed")
            return
    max_tokens, top = getattr(bounds, mark.tokens), getattr(bounds, mark.max_token_id)
    for i, seq in enumerate(inputs.ids or ()):
        if len(seq) > max_tokens:
            yield loc, _too_large(f"input[{i}] has {len(seq)} tokens, at most {max_tokens} are allowed")
            return
        bad = next((t for t in seq if not 0 <= t <= top), None)
        if bad is not None:
            yield loc, PydanticCustomError("invalid_input", "input[{i}] holds token id {t}, outside "
                                           "0..{v}", {"i": i, "t": bad, "v": top})
            return


def _too_large(message: str) -> PydanticCustomError:
    """A size error answered with 413."""
    return PydanticCustomError(TOO_LARGE, message)


def document_limits(schema: Any, bounds: RequestBounds) -> Any:
    """``schema`` (an OpenAPI or JSON schema) with the :data:`~qwen3_rag.service.schemas.LIMITS_KEY`
    placeholders replaced by the values of ``bounds``.

    Example:
        >>> from qwen3_rag.service.schemas import ServiceLimits
        >>> b = RequestBounds.of(ServiceLimits(max_chars=64), dimension=8, min_dimensions=8,
        ...                      embed_tokens=16, embed_vocab=100)
        >>> document_limits({"type": "string", LIMITS_KEY: {"maxLength": "max_chars"}}, b)
        {'type': 'string', 'maxLength': 64}
    """
    if isinstance(schema, list):
        return [document_limits(v, bounds) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: document_limits(v, bounds) for k, v in schema.items() if k != LIMITS_KEY}
    for keyword, bound in schema.get(LIMITS_KEY, {}).items():
        out[keyword] = getattr(bounds, bound)
    return out
