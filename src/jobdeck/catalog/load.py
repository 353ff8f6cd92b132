"""Loading ``jobdeck.yaml``: YAML with positions -> the effective :class:`Catalog`, or all errors.

Every problem is reported in one pass as ``FILE:LINE:COL: error: MESSAGE``, pointing at
the offending key or value. Validation runs in two layers that both always run: the
model (types, ranges, per-item rules) and the references between items (pools, queues,
``{placeholders}``, slash commands), so that fixing one error never reveals another
that could have been shown already.
"""

from __future__ import annotations

import hashlib
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from jobdeck.catalog.model import Catalog, Schedule, Spec, one_of_problems
from jobdeck.catalog.positions import Loc, Positions, YamlSyntaxError, parse
from jobdeck.catalog.types import closest


@dataclass(frozen=True, order=True)
class Diagnostic:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: error: {self.message}"


class CatalogError(Exception):
    """The catalog is invalid; ``diagnostics`` lists every problem found, in file order."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(set(diagnostics))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


@dataclass(frozen=True)
class LoadedCatalog:
    catalog: Catalog
    path: str
    text: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def load_catalog(path: str | Path) -> LoadedCatalog:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(
            [Diagnostic(str(path), 1, 1, "no such file; create it or pass -f/--catalog PATH")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(
            [Diagnostic(str(path), 1, 1, f"cannot read the catalog: {exc}")]
        ) from None
    return load_catalog_text(text, str(path))


def load_catalog_text(text: str, filename: str = "jobdeck.yaml") -> LoadedCatalog:
    try:
        data, positions = parse(text)
    except YamlSyntaxError as exc:
        raise CatalogError([Diagnostic(filename, exc.line, exc.column, exc.message)]) from None
    if not isinstance(data, dict):
        raise CatalogError(
            [Diagnostic(filename, 1, 1, "the catalog must be a mapping with 'version: 1' first")]
        )
    report = _Report(filename, positions)
    catalog: Catalog | None = None
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            report.model_error(error)
    _check_references(data, report)
    if report.diagnostics or catalog is None:
        raise CatalogError(report.diagnostics)
    return LoadedCatalog(apply_defaults(catalog), filename, text)


def apply_defaults(catalog: Catalog) -> Catalog:
    """Fill every item's unset fields from ``defaults`` (and schedules' zone from the top)."""
    defaults = catalog.defaults
    preset = {name: getattr(defaults, name) for name in defaults.model_fields_set}
    updates: dict[str, Any] = {}
    for section in ("schedules", "workers", "commands"):
        resolved: dict[str, Spec] = {}
        for name, spec in getattr(catalog, section).items():
            change = {
                key: value
                for key, value in preset.items()
                if value is not None
                and key in type(spec).model_fields
                and key not in spec.model_fields_set
            }
            if preset.get("env"):
                change["env"] = {**preset["env"], **getattr(spec, "env", {})}
            if isinstance(spec, Schedule) and spec.cron is not None and spec.timezone is None:
                change["timezone"] = catalog.timezone
            resolved[name] = spec.model_copy(update=change) if change else spec
        updates[section] = resolved
    return catalog.model_copy(update=updates)


class _Report:
    def __init__(self, filename: str, positions: Positions) -> None:
        self.filename = filename
        self.positions = positions
        self.diagnostics: list[Diagnostic] = []

    def add(self, point: tuple[int, int], message: str) -> None:
        self.diagnostics.append(Diagnostic(self.filename, point[0], point[1], message))

    def model_error(self, error: ErrorDetails) -> None:
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        message = error["msg"].removeprefix("Value error, ")
        if "[key]" in loc:
            key_loc = loc[: loc.index("[key]")]
            self.add(self.positions.key(key_loc), f"{_dotted(key_loc[:-1])}: {message}")
            return
        where = _dotted(loc)
        if kind == "extra_forbidden":
            key = str(loc[-1])
            known = _fields_at(loc[:-1])
            hint = closest(key, known)
            fix = f"; did you mean '{hint}'?" if hint else f"; known keys: {', '.join(known)}"
            self.add(
                self.positions.key(loc),
                f"{_dotted(loc[:-1]) or 'top level'}: unknown key '{key}'{fix}",
            )
        elif kind == "missing":
            self.add(self.positions.key(loc[:-1]), f"{where}: missing required key '{loc[-1]}'")
        elif kind == "catalog":
            ctx = error.get("ctx") or {}
            at = ctx.get("at")
            target: Loc = (*loc, str(at)) if at else loc
            self.add(self.positions.key(target), f"{_dotted(loc)}: {ctx.get('message', message)}")
        elif kind == "literal_error" and isinstance(error.get("input"), str):
            options = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
            hint = closest(str(error["input"]), options)
            fix = f"; did you mean '{hint}'?" if hint else ""
            self.add(
                self.positions.value(loc),
                f"{where}: {error['input']!r} is not one of {', '.join(options)}{fix}",
            )
        else:
            self.add(self.positions.value(loc), f"{where}: {message}")


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def _fields_at(loc: Loc) -> list[str]:
    """The keys that the model allows at ``loc`` (for did-you-mean hints)."""
    annotation: Any = Catalog
    for part in loc:
        annotation = _strip(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(str(part))
            if info is None:
                return []
            annotation = info.annotation
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]  # step over the key or index
        else:
            return []
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _strip(annotation: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin is typing.Annotated or (
            origin in (types.UnionType, typing.Union) and len(args) == 1
        ):
            annotation = args[0]
        else:
            return annotation


def _check_references(data: dict[str, Any], report: _Report) -> None:
    """Cross-item rules, checked on the raw data so that they are reported together with
    the model's own errors."""
    pools = _section(data, "pools")
    queues = _section(data, "queues")
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    assert isinstance(defaults, dict)
    default_pool = defaults.get("pool")
    if isinstance(default_pool, str) and default_pool not in pools:
        report.add(
            report.positions.value(("defaults", "pool")),
            f"defaults.pool: {_unknown('pool', default_pool, pools)}",
        )
    for section in ("schedules", "workers", "commands"):
        for name, spec in _section(data, section).items():
            if not isinstance(spec, dict):
                continue
            present = {key for key, value in spec.items() if value is not None}
            for at, message in one_of_problems(section, present):
                target = (section, name, at) if at else (section, name)
                report.add(report.positions.key(target), f"{section}.{name}: {message}")
            pool = spec.get("pool")
            if isinstance(pool, str) and pool not in pools:
                report.add(
                    report.positions.value((section, name, "pool")),
                    f"{section}.{name}.pool: {_unknown('pool', pool, pools)}",
                )
            _check_memory(section, name, spec, pools, default_pool, report)
    for name, spec in _section(data, "workers").items():
        queue = spec.get("queue") if isinstance(spec, dict) else None
        if isinstance(queue, str) and queue not in queues:
            report.add(
                report.positions.value(("workers", name, "queue")),
                f"workers.{name}.queue: {_unknown('queue', queue, queues)}",
            )
    _check_queue_names(queues, report)
    _check_commands(_section(data, "commands"), report)


def _section(data: dict[str, Any], section: str) -> dict[str, Any]:
    value = data.get(section)
    return value if isinstance(value, dict) else {}


def _unknown(kind: str, name: str, declared: dict[str, Any]) -> str:
    hint = closest(name, list(declared))
    if hint:
        return f"unknown {kind} '{name}'; did you mean '{hint}'?"
    known = ", ".join(declared) or "none"
    return f"unknown {kind} '{name}'; declare it under '{kind}s:' (declared: {known})"


def _check_memory(
    section: str,
    name: str,
    spec: dict[str, Any],
    pools: dict[str, Any],
    default_pool: object,
    report: _Report,
) -> None:
    from jobdeck.units import format_size, parse_size

    pool_name = spec.get("pool", default_pool)
    pool = pools.get(pool_name) if isinstance(pool_name, str) else None
    memory, pool_memory = spec.get("memory"), pool.get("memory") if isinstance(pool, dict) else None
    if not (isinstance(memory, str) and isinstance(pool_memory, str)):
        return
    try:
        run_bytes, pool_bytes = parse_size(memory), parse_size(pool_memory)
    except ValueError:
        return  # reported by the model
    if run_bytes > pool_bytes:
        report.add(
            report.positions.value((section, name, "memory")),
            f"{section}.{name}.memory: {format_size(run_bytes)} is more than pool "
            f"'{pool_name}' has ({format_size(pool_bytes)}); lower it or grow the pool",
        )


def _check_queue_names(queues: dict[str, Any], report: _Report) -> None:
    for name, spec in queues.items():
        if isinstance(spec, dict) and spec.get("max_receive_count") is not None:
            dlq = f"{name}-dlq"
            if dlq in queues:
                report.add(
                    report.positions.key(("queues", dlq)),
                    f"queues.{dlq}: this name is taken by the dead-letter queue of "
                    f"'{name}'; rename it",
                )


def _check_commands(commands: dict[str, Any], report: _Report) -> None:
    slashes: dict[str, str] = {}
    for name, spec in commands.items():
        if not isinstance(spec, dict):
            continue
        params = spec.get("params") if isinstance(spec.get("params"), dict) else {}
        assert isinstance(params, dict)
        argv = spec.get("command")
        if isinstance(argv, list):
            for index, arg in enumerate(argv):
                if isinstance(arg, str):
                    _check_placeholders(name, index, arg, params, report)
        slash = spec.get("slash")
        if isinstance(slash, str):
            loc = ("commands", name, "slash")
            if slash == "/jobdeck":
                report.add(
                    report.positions.value(loc),
                    f"commands.{name}.slash: /jobdeck is jobdeck's own command; pick another",
                )
            elif slash in slashes:
                report.add(
                    report.positions.value(loc),
                    f"commands.{name}.slash: {slash} is already used by '{slashes[slash]}'",
                )
            else:
                slashes[slash] = name


def _check_placeholders(
    name: str, index: int, arg: str, params: dict[str, Any], report: _Report
) -> None:
    where = report.positions.value(("commands", name, "command", index))
    prefix = f"commands.{name}.command[{index}]"
    try:
        fields = list(Formatter().parse(arg))
    except ValueError as exc:
        report.add(where, f"{prefix}: {exc} in {arg!r}; write '{{{{' and '}}}}' for literal braces")
        return
    for _, field, spec, conversion in fields:
        if field is None:
            continue
        if spec or conversion or field not in params:
            if field in params:
                message = f"placeholder {{{field}}} takes no format or conversion"
            else:
                hint = closest(field, list(params))
                fix = (
                    f"did you mean '{{{hint}}}'?"
                    if hint
                    else "declare it under 'params:' or write '{{' for a literal brace"
                )
                message = f"placeholder {{{field}}} names no declared param; {fix}"
            report.add(where, f"{prefix}: {message}")
