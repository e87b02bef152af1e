"""YAML config files validated by pydantic, with errors that point at ``FILE:LINE:COL``.

Shared by the edge agent's site config and central's alert rules: ``load_model(path, Model)``
returns a validated model or raises ``ConfigError`` whose issues each carry the line and column
of the offending YAML node (or its key, for an unknown key), so a ``validate`` command can show
a technician the exact line. Duplicate keys, which PyYAML would silently collapse, are errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Loc = tuple[int | str, ...]
Fallback = Callable[[Loc], Loc | None]
"""Where else a value at ``loc`` may have come from (e.g. a ``defaults`` section); None: nowhere."""

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, at a 1-based line and column."""

    path: str
    line: int
    column: int
    loc: str
    message: str

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        return f"{self.path}:{self.line}:{self.column}: {where}{self.message}"


class ConfigError(ValueError):
    """The config file is unreadable or invalid; ``issues`` say where and why."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def load_model(path: Path | str, model: type[ModelT], *, fallback: Fallback | None = None) -> ModelT:
    """Read and validate a YAML file as ``model``; raises ``ConfigError`` pointing at the offending lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([ConfigIssue(str(path), 1, 1, "", f"cannot read config: {error}")]) from error
    return parse_model(text, model, str(path), fallback=fallback)


def parse_model(text: str, model: type[ModelT], path: str = "<config>", *, fallback: Fallback | None = None) -> ModelT:
    """Validate YAML text as ``model``; ``path`` is only used in messages."""
    root, data = _compose(text, path)
    duplicates = list(_duplicate_keys(root, path))
    if duplicates:
        raise ConfigError(duplicates)
    if not isinstance(data, dict):
        mark = root.start_mark
        raise ConfigError(
            [ConfigIssue(path, mark.line + 1, mark.column + 1, "", "config must be a mapping (key: value) at the top")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_issues_from(error, root, path, fallback)) from None


def _compose(text: str, path: str) -> tuple[yaml.Node, Any]:
    """The YAML node tree (with line marks) and the Python data built from it."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise ConfigError([ConfigIssue(path, 1, 1, "", "config is empty")])
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(p for p in (error.context, error.problem) if p)
        raise ConfigError([ConfigIssue(path, line, column, "", f"YAML syntax: {problem}")]) from None
    except yaml.YAMLError as error:
        raise ConfigError([ConfigIssue(path, 1, 1, "", f"YAML: {error}")]) from None
    finally:
        loader.dispose()
    return root, data


def _duplicate_keys(node: yaml.Node, path: str, loc: Loc = ()) -> Iterable[ConfigIssue]:
    """PyYAML silently keeps the last of two equal keys; a config with one is almost always a mistake."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                mark = key_node.start_mark
                yield ConfigIssue(path, mark.line + 1, mark.column + 1, _dotted((*loc, key)), "duplicate key")
            seen.add(key)
            yield from _duplicate_keys(value_node, path, (*loc, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, path, (*loc, index))


def _issues_from(error: ValidationError, root: yaml.Node, path: str, fallback: Fallback | None) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: set[tuple[int, int, str]] = set()
    for detail in error.errors(include_url=False):
        loc: Loc = tuple(detail["loc"])
        node = locate(root, loc, point_at_key=detail["type"] == "extra_forbidden", fallback=fallback)
        mark = node.start_mark
        key = (mark.line, mark.column, detail["msg"])
        if key in seen:
            # A bad value in a shared section (``defaults``) fails everywhere it is used; say it once.
            continue
        seen.add(key)
        issues.append(ConfigIssue(path, mark.line + 1, mark.column + 1, _dotted(loc), detail["msg"]))
    return sorted(issues, key=lambda issue: (issue.line, issue.column))


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def locate(root: yaml.Node, loc: Loc, *, point_at_key: bool = False, fallback: Fallback | None = None) -> yaml.Node:
    """The YAML node a pydantic error ``loc`` refers to, or the nearest enclosing one.

    A value the file does not hold at ``loc`` is looked for at ``fallback(loc)`` (e.g. the
    ``defaults`` a setting came from). ``point_at_key`` returns the key node (for unknown
    keys) instead of its value.
    """
    node, resolved = _walk(root, loc, point_at_key)
    other = fallback(loc) if fallback is not None and not resolved else None
    if other is not None:
        from_fallback, found = _walk(root, other, point_at_key)
        if found:
            return from_fallback
    return node


def _walk(root: yaml.Node, loc: Loc, point_at_key: bool) -> tuple[yaml.Node, bool]:
    """Follow ``loc`` as far as the tree goes; parts that name no node (union tags) are skipped."""
    node = root
    resolved = True
    for position, part in enumerate(loc):
        is_last = position == len(loc) - 1
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    child = key_node if (is_last and point_at_key) else value_node
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
        if child is None:
            resolved = False
            continue
        node = child
        resolved = True
    return node, resolved
