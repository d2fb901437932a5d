"""Loading pipeline and search-space YAML with the line of every key, so errors say where.

Only PyYAML's safe loader is used (``!!python/...`` tags are refused); documents that expand to too
many nodes (alias bombs) or nest too deep are refused before they are built. Every error is a
`ConfigError` whose text is one line: ``file:line: key.path: what must hold, what was given``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from ..errors import AutoPruneError, ConfigError
from ._base import shown as shown_value
from ._errors import first_error_message
from ._pipeline import PipelineConfig

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "LoadedPipeline", "SourceMap", "load_pipeline", "read_yaml"]

MAX_NODES = 20_000
MAX_DEPTH = 32
MAX_BYTES = 1 << 20
_YAML_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {"str", "int", "float", "bool", "null", "map", "seq"}
_KEY_KINDS = {"int": "a number", "float": "a number", "bool": "a boolean", "null": "nothing (null)"}


class _Loader(yaml.SafeLoader):
    """Safe loader reading scalars the YAML 1.2 way: ``1e-4`` is a float (not a string), and only
    true and false are booleans (YAML 1.1 also reads yes, no, on, off, y and n as booleans)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != f"{_YAML_TAG}bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(f"{_YAML_TAG}bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(
    f"{_YAML_TAG}float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


@dataclass
class SourceMap:
    """Where each dotted key was written: ``"search.trials" -> "pipelines/x.yaml:7"``."""

    entries: dict[str, str] = field(default_factory=dict)
    root: str = ""

    def locate(self, key: str | None) -> str:
        """The location of ``key``, or of its closest written parent, or of the file."""
        while key:
            if key in self.entries:
                return self.entries[key]
            key = key.rpartition(".")[0]
        return self.root

    def merge(self, other: SourceMap, prefix: str) -> None:
        for key, where in other.entries.items():
            self.entries[f"{prefix}.{key}" if key else prefix] = where


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (short, machine-independent)."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd().resolve()) else str(path)
    except (ValueError, OSError, RuntimeError):  # another drive, a deleted working directory, a symlink loop
        return str(path)


def _mark_line(error: yaml.MarkedYAMLError) -> int:
    mark = error.problem_mark or error.context_mark
    return mark.line + 1 if mark is not None else 1


def _walk(
    node: yaml.Node, prefix: str, shown: str, out: SourceMap, depth: int = 0, count: list[int] | None = None
) -> None:
    """Record key lines, refusing duplicate keys, deep nesting and alias bombs (counted as expanded)."""
    count = count if count is not None else [0]
    count[0] += 1
    line = node.start_mark.line + 1
    if count[0] > MAX_NODES:
        raise ConfigError(
            f"the document expands to more than {MAX_NODES} nodes (an alias bomb?)",
            key=prefix.split(".", maxsplit=1)[0] or None,
            location=f"{shown}:{line}",
        )
    standard = node.tag.removeprefix(_YAML_TAG)
    if standard not in _PLAIN_TAGS:
        shown_tag = f"!!{standard}" if node.tag.startswith(_YAML_TAG) else node.tag
        raise ConfigError(
            f"the tag {shown_tag!r} is not allowed: only plain YAML values are accepted",
            key=prefix or None,
            location=f"{shown}:{line}",
        )
    if depth > MAX_DEPTH:
        raise ConfigError(
            f"nesting is deeper than {MAX_DEPTH} levels",
            key=prefix.split(".", maxsplit=1)[0] or None,
            location=f"{shown}:{line}",
        )
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    "keys must be plain strings", key=prefix or None, location=f"{shown}:{key_node.start_mark.line + 1}"
                )
            key_line = key_node.start_mark.line + 1
            if key_node.tag != f"{_YAML_TAG}str":
                kind = _KEY_KINDS.get(key_node.tag.removeprefix(_YAML_TAG), key_node.tag)
                raise ConfigError(
                    f"the key '{key_node.value}' reads as {kind}; keys are names (quote it to mean the text)",
                    key=prefix or None,
                    location=f"{shown}:{key_line}",
                )
            dotted = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            if key_node.value in seen:
                raise ConfigError(
                    f"duplicate key '{key_node.value}' (first written on line {seen[key_node.value]})",
                    key=dotted,
                    location=f"{shown}:{key_line}",
                )
            seen[key_node.value] = key_line
            out.entries.setdefault(dotted, f"{shown}:{key_line}")
            _walk(value_node, dotted, shown, out, depth + 1, count)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            dotted = f"{prefix}.{index}" if prefix else str(index)
            out.entries.setdefault(dotted, f"{shown}:{item.start_mark.line + 1}")
            _walk(item, dotted, shown, out, depth + 1, count)


def _read_text(path: Path, shown: str, what: str) -> str:
    """The text of a YAML file, refusing what is not one: a folder, a pipe or device (which could
    block or never end), a file over `MAX_BYTES`."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"the {what} path is a folder, not a file", location=shown)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"the {what} path is not a regular file (a pipe or a device?)", location=shown)
        if info.st_size > MAX_BYTES:
            raise ConfigError(
                f"the {what} file is {info.st_size:,} bytes; a {what} file is at most {MAX_BYTES:,}", location=shown
            )
        data = path.read_bytes()
        return data.decode("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} file does not exist", location=shown) from exc
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        message = f"the {what} file is not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8"
        raise ConfigError(message, location=f"{shown}:{line}") from exc
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConfigError(f"cannot read the {what} file: {reason}", location=shown) from exc


def _check_depth(text: str, shown: str) -> None:
    """Refuse nesting deeper than `MAX_DEPTH` from the event stream, before the recursive composer
    would run out of stack on it."""
    depth, top_nodes, top_key = 0, 0, None
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if depth == 1 and isinstance(event, yaml.NodeEvent):  # the root mapping's keys and values
                top_nodes += 1
                if top_nodes % 2 and isinstance(event, yaml.ScalarEvent):
                    top_key = event.value
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH + 1:
                    raise ConfigError(
                        f"nesting is deeper than {MAX_DEPTH} levels",
                        key=top_key,
                        location=f"{shown}:{event.start_mark.line + 1}",
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return  # composing reports it, with its line


def read_yaml(path: Path, *, what: str = "pipeline") -> tuple[dict[str, Any], SourceMap, str]:
    """A YAML mapping, the lines of its keys, and its text.

    Raises:
        ConfigError: The file is missing, unreadable, not valid YAML, unsafe, or not a mapping.
    """
    shown = display_path(path)
    text = _read_text(path, shown, what)
    _check_depth(text, shown)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"YAML syntax error: {problem}", location=f"{shown}:{_mark_line(exc)}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", location=shown) from exc
    if node is None:
        raise ConfigError(f"the {what} file is empty", location=f"{shown}:1")
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(
            f"a {what} file must be a mapping of keys to values", location=f"{shown}:{node.start_mark.line + 1}"
        )
    sources = SourceMap(root=f"{shown}:1")
    _walk(node, "", shown, sources)
    try:
        data = _Loader(text).construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(
            f"{exc.problem or 'unsupported YAML'} (only plain YAML is accepted)", location=f"{shown}:{_mark_line(exc)}"
        ) from exc
    return data, sources, text


def _apply_override(data: dict[str, Any], expression: str, sources: SourceMap) -> None:
    key, sep, raw = expression.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set expects key.path=value, but got {expression!r}", location="--set")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"cannot parse the value {shown_value(raw)}: {problem}", key=key, location=f"--set {expression}"
        ) from exc
    target = data
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(
                f"cannot set inside {'.'.join(parts[: depth + 1])}, which is not a mapping",
                key=key,
                location=f"--set {expression}",
            )
        target = child
    target[parts[-1]] = value
    sources.entries = {k: v for k, v in sources.entries.items() if not (k == key or k.startswith(key + "."))}
    sources.entries[key] = f"--set {expression}"


@dataclass
class LoadedPipeline:
    """A validated pipeline, where its keys were written, and the texts it was read from."""

    config: PipelineConfig
    path: Path
    sources: SourceMap
    text: str
    space_path: Path | None = None
    space_text: str | None = None
    overrides: tuple[str, ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def locate(self, error: AutoPruneError) -> AutoPruneError:
        """Give ``error`` the file:line of its key (if it has a key and no location yet)."""
        if error.location is None and error.key is not None:
            error.location = self.sources.locate(error.key)
        return error


def _include_space(data: dict[str, Any], base: Path, sources: SourceMap) -> tuple[Path | None, str | None]:
    search = data.get("search")
    if not isinstance(search, dict) or not isinstance(search.get("space"), str):
        return None, None
    path = (base / search["space"]).resolve() if not Path(search["space"]).is_absolute() else Path(search["space"])
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(
            f"search space file {search['space']!r} {what} (paths are relative to the pipeline file)",
            key="search.space",
            location=sources.locate("search.space"),
        )
    space, space_sources, text = read_yaml(path, what="search space")
    search["space"] = space
    sources.merge(space_sources, "search.space")
    return path, text


def _validate(model: type[BaseModel], data: Mapping[str, Any], sources: SourceMap, prefix: str = "") -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        key, message = first_error_message(exc, model, data)
        full = f"{prefix}.{key}" if prefix and key else prefix or key
        raise ConfigError(message, key=full or None, location=sources.locate(full)) from None


def load_pipeline(path: str | Path, overrides: Iterable[str] = ()) -> LoadedPipeline:
    """Read, include, override and validate a pipeline file.

    Precedence: ``--set`` overrides over the YAML over the defaults. Search-space paths are relative
    to the pipeline file.

    Raises:
        ConfigError: Anything wrong, as one ``file:line: key: message`` line.
    """
    path = Path(path)
    data, sources, text = read_yaml(path)
    overrides = tuple(overrides)
    # --set search.space=other.yaml picks the file to include; every other override applies after it
    choosing = [o for o in overrides if o.partition("=")[0].strip() == "search.space"]
    for expression in choosing:
        _apply_override(data, expression, sources)
    space_path, space_text = _include_space(data, path.parent, sources)
    for expression in overrides:
        if expression not in choosing:
            _apply_override(data, expression, sources)
    config = _validate(PipelineConfig, data, sources)
    return LoadedPipeline(config, path, sources, text, space_path, space_text, overrides)
