"""YAML with positions: plain Python data plus where each key and value stood in the file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarfloat import ScalarFloat
from ruamel.yaml.scalarint import ScalarInt

Loc = tuple[str | int, ...]
Point = tuple[int, int]  # 1-based line and column


@dataclass
class Positions:
    keys: dict[Loc, Point] = field(default_factory=dict)
    values: dict[Loc, Point] = field(default_factory=dict)

    def value(self, loc: Loc) -> Point:
        """Where the value at ``loc`` (or its nearest enclosing value) starts."""
        return self._nearest(loc, self.values)

    def key(self, loc: Loc) -> Point:
        """Where the key at ``loc`` (or its nearest enclosing key) starts."""
        return self._nearest(loc, self.keys)

    def has(self, loc: Loc) -> bool:
        return loc in self.values

    @staticmethod
    def _nearest(loc: Loc, table: dict[Loc, Point]) -> Point:
        for end in range(len(loc), 0, -1):
            found = table.get(loc[:end])
            if found is not None:
                return found
        return (1, 1)


class YamlSyntaxError(Exception):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


def parse(text: str) -> tuple[Any, Positions]:
    """Parse YAML ``text`` into plain data and the position of every key and value."""
    yaml = YAML(typ="rt")
    try:
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise YamlSyntaxError(line, column, _syntax_message(exc)) from None
    positions = Positions()
    return _plain(document, (), positions), positions


def _syntax_message(exc: MarkedYAMLError) -> str:
    problem = str(exc.problem or "")
    duplicate = re.match(r'found duplicate key "(.*)" with value', problem)
    if duplicate:
        return (
            f"duplicate key '{duplicate.group(1)}': a key can appear once in a mapping; "
            "keep only one of them"
        )
    if "'\\t'" in problem:
        return "a tab character cannot indent YAML; indent with spaces"
    for raw in ("'<stream end>'", "end of stream"):
        problem = problem.replace(raw, "the end of the file")
    context = f" ({exc.context})" if exc.context else ""
    return (
        f"invalid YAML: {problem or 'cannot parse'}{context}; "
        "check the indentation, quotes and brackets here"
    )


def _plain(node: Any, loc: Loc, positions: Positions) -> Any:
    if isinstance(node, CommentedMap):
        mapping: dict[Any, Any] = {}
        for key, value in node.items():
            key_line, key_col = node.lc.key(key)
            value_line, value_col = node.lc.value(key)
            plain_key = _scalar(key)
            child = (*loc, plain_key)
            positions.keys[child] = (key_line + 1, key_col + 1)
            # An empty (null) value has no text of its own: point at its key instead.
            positions.values[child] = (
                (key_line + 1, key_col + 1) if value is None else (value_line + 1, value_col + 1)
            )
            mapping[plain_key] = _plain(value, child, positions)
        return mapping
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            line, col = node.lc.item(index)
            child = (*loc, index)
            positions.keys[child] = positions.values[child] = (line + 1, col + 1)
            items.append(_plain(value, child, positions))
        return items
    return _scalar(node)


def _scalar(node: Any) -> Any:
    # ruamel's round-trip scalars subclass int/float/str; hand pydantic the plain types.
    if isinstance(node, ScalarBoolean):
        return bool(node)
    if isinstance(node, ScalarInt):
        return int(node)
    if isinstance(node, ScalarFloat):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node
