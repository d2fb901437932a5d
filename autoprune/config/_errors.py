"""Turning pydantic's validation errors into one readable line about one key."""

from __future__ import annotations

import difflib
import functools
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ._base import Boolean, shown

__all__ = ["first_error_message"]


@functools.cache
def _union_tags(root: type[BaseModel]) -> frozenset[str]:
    """The tag values of the discriminated unions under ``root`` (``cnn`` in ``model.cnn.widths``):
    pydantic puts them in an error's location, but they are never YAML keys."""
    tags: set[str] = set()
    seen: set[type[BaseModel]] = set()
    pending = [root]
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for field in model.model_fields.values():
            union = [c for c in _unwrap(field.annotation) if isinstance(c, type) and issubclass(c, BaseModel)]
            pending.extend(union)
            if len(union) < 2:
                continue
            for member in union:  # pydantic names a union member by its literal tag
                for info in member.model_fields.values():
                    if typing.get_origin(info.annotation) is typing.Literal:
                        tags.update(str(arg) for arg in typing.get_args(info.annotation))
    return frozenset(tags)


def _dotted_key(loc: tuple[Any, ...], data: Any, root: type[BaseModel]) -> tuple[str, list[str]]:
    """The YAML key path of a pydantic ``loc`` (skipping union tags, which are not keys) and its parts."""
    parts: list[str] = []
    node = data
    for index, item in enumerate(loc):
        following = loc[index + 1] if index + 1 < len(loc) else None
        is_tag = (
            item in _union_tags(root)
            and isinstance(node, Mapping)
            and (item not in node or (following is not None and following in node))
        )
        if is_tag:
            continue  # pydantic's name for the union member, not a key
        if (isinstance(node, Mapping) and item in node) or (
            isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node)
        ):
            parts.append(str(item))
            node = node[item]
        elif isinstance(item, str) and _looks_like_key(item):
            parts.append(item)  # a missing key
            node = None
    return ".".join(parts), parts


def _looks_like_key(item: str) -> bool:
    return bool(re.match(r"^[A-Za-z_][\w-]*$", item)) and "[" not in item


def _unwrap(annotation: Any) -> list[Any]:
    """The classes an annotation may hold (Optional, Annotated and unions flattened)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [c for arg in typing.get_args(annotation) for c in _unwrap(arg)]
    return [annotation]


def _model_at(root: type[BaseModel], parts: list[str], data: Any) -> type[BaseModel] | None:
    """The pydantic model that holds the mapping at key path ``parts`` (None if not a model)."""
    model: type[BaseModel] | None = root
    node = data
    for part in parts:
        if model is None or part not in model.model_fields:
            return None
        node = node.get(part) if isinstance(node, Mapping) else None
        candidates = [
            c for c in _unwrap(model.model_fields[part].annotation) if isinstance(c, type) and issubclass(c, BaseModel)
        ]
        model = _pick(candidates, node)
    return model


def _pick(candidates: list[type[BaseModel]], node: Any) -> type[BaseModel] | None:
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    for candidate in candidates:  # discriminated union: match on the literal tag field
        for name, info in candidate.model_fields.items():
            args = typing.get_args(info.annotation)
            if (
                typing.get_origin(info.annotation) is typing.Literal
                and isinstance(node, Mapping)
                and node.get(name) in args
            ):
                return candidate
    return None


def _quoted(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _suggest(given: Any, options: list[str]) -> str:
    close = difflib.get_close_matches(str(given), options, n=1, cutoff=0.6) if isinstance(given, str) else []
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe(error: Mapping[str, Any], root: type[BaseModel], data: Any) -> tuple[str, str]:
    kind, loc, ctx = error["type"], tuple(error["loc"]), error.get("ctx") or {}
    key, parts = _dotted_key(loc, data, root)
    given = error.get("input")
    if kind == "extra_forbidden":
        model = _model_at(root, parts[:-1], data)
        allowed = sorted(model.model_fields) if model else []
        hint = _suggest(parts[-1], allowed) if allowed else ""
        listing = f"; allowed keys: {', '.join(allowed)}" if allowed and not hint else ""
        return key, f"unknown key '{parts[-1]}'{hint}{listing}"
    if kind == "missing":
        return key, "this key is required but missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(ctx.get("discriminator", "")).strip("'\"")
        key = f"{key}.{tag}" if key else tag
        options = _quoted(str(ctx.get("expected_tags", "")))
        if kind == "union_tag_not_found":
            return key, f"this key is required; one of {', '.join(options)}"
        return (
            key,
            f"must be one of {', '.join(options)}, but got {shown(ctx.get('tag'))}{_suggest(ctx.get('tag'), options)}",
        )
    message = str(error["msg"])
    if isinstance(given, Boolean):
        return key, f"must be a number, but got {given}"
    if message.startswith("Value error, "):
        return key, message.removeprefix("Value error, ")
    if kind in ("float_parsing", "int_parsing"):
        return key, f"must be {'an integer' if kind == 'int_parsing' else 'a number'}, but got {shown(given)}"
    if kind == "too_short" and isinstance(given, (list, tuple)):
        least = ctx.get("min_length", 1)
        return key, f"must hold at least {least} item{'s' * (least != 1)}, but got {shown(given)}"
    message = re.sub(r"^Input should be ", "must be ", message)
    message = re.sub(r", got .*$", "", message)  # pydantic's own "got ..." is replaced by ours
    message = re.sub(r"^Input ", "value ", message)
    if kind == "literal_error":
        return key, f"{message}, but got {shown(given)}{_suggest(given, _quoted(str(ctx.get('expected', ''))))}"
    if isinstance(given, (dict, list)) and kind not in ("dict_type", "list_type", "model_type"):
        return key, message
    return key, f"{message}, but got {shown(given)}"


def first_error_message(exc: ValidationError, root: type[BaseModel], data: Any) -> tuple[str, str]:
    """``(dotted key, message)`` for the first error pydantic reports."""
    return _describe(exc.errors(include_url=False)[0], root, data)
