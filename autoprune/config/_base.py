"""The base of every configuration model: unknown keys are errors, values are frozen."""

from __future__ import annotations

import contextvars
import re
import types
import typing
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from .._imports import FACTORY_PATTERN

__all__ = ["VALIDATING", "Boolean", "FactoryPath", "Strict", "shown"]

# True while a configuration model validates its fields: a model built inside another one then lets
# pydantic report its errors with their whole key path (see `_engine.Checked`)
VALIDATING: contextvars.ContextVar[bool] = contextvars.ContextVar("autoprune_validating", default=False)


SHOWN_CHARACTERS = 80


def shown(value: Any) -> str:
    """``repr(value)``, cut to `SHOWN_CHARACTERS` (an error line never echoes a huge value whole)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else f"{text[: SHOWN_CHARACTERS - 1]}… ({len(text):,} characters)"


def _numbers_only(annotation: Any) -> bool:
    """Whether ``annotation`` holds numbers and never a boolean (``int``, ``float``, optional ones)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _numbers_only(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return bool(members) and all(_numbers_only(arg) for arg in members)
    return annotation in (int, float)


class Boolean(str):
    """A boolean given where a number belongs, as text: pydantic refuses it (it would take ``true``
    for 1), and the error names it as the boolean it was."""

    __slots__ = ()


def _spelled(annotation: Any, value: Any) -> Any:
    """``value`` with each boolean where ``annotation`` wants numbers (also in a list) a `Boolean`."""
    if isinstance(value, bool):
        return Boolean(str(value).lower()) if _numbers_only(annotation) else value
    if isinstance(value, list) and any(isinstance(item, bool) for item in value):
        for member in (annotation, *typing.get_args(annotation)):
            if typing.get_origin(member) in (list, tuple) and any(_numbers_only(a) for a in typing.get_args(member)):
                return [Boolean(str(item).lower()) if isinstance(item, bool) else item for item in value]
    return value


class Strict(BaseModel):
    """Unknown keys are errors, values are frozen, numbers are finite and never booleans."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {key: _spelled(fields[key].annotation, value) if key in fields else value for key, value in data.items()}

    @model_validator(mode="wrap")
    @classmethod
    def _mark_nested(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        token = VALIDATING.set(True)
        try:
            return handler(data)
        finally:
            VALIDATING.reset(token)


def _factory_path(value: str) -> str:
    if not re.match(FACTORY_PATTERN, value):
        raise ValueError(f"must look like 'package.module:function', but got {shown(value)}")
    return value


FactoryPath = Annotated[str, AfterValidator(_factory_path)]
"""A ``"package.module:function"`` import path (the only way configuration names code to import)."""
