"""The base of every configuration model: unknown keys are errors, values are frozen."""

from __future__ import annotations

import contextvars
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidatorFunctionWrapHandler, model_validator

from .._imports import FACTORY_PATTERN

__all__ = ["VALIDATING", "FactoryPath", "Strict"]

# True while a configuration model validates its fields: a model built inside another one then lets
# pydantic report its errors with their whole key path (see `_engine.Checked`)
VALIDATING: contextvars.ContextVar[bool] = contextvars.ContextVar("autoprune_validating", default=False)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
        raise ValueError(f"must look like 'package.module:function', but got {value!r}")
    return value


FactoryPath = Annotated[str, AfterValidator(_factory_path)]
"""A ``"package.module:function"`` import path (the only way configuration names code to import)."""
