"""The base of every configuration model: unknown keys are errors, values are frozen."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from .._imports import FACTORY_PATTERN

__all__ = ["FactoryPath", "Strict"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _factory_path(value: str) -> str:
    if not re.match(FACTORY_PATTERN, value):
        raise ValueError(f"must look like 'package.module:function', but got {value!r}")
    return value


FactoryPath = Annotated[str, AfterValidator(_factory_path)]
"""A ``"package.module:function"`` import path (the only way configuration names code to import)."""
