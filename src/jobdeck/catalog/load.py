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

from jobdeck.catalog.concurrency import key_problems
from jobdeck.catalog.model import SECTIONS, Catalog, Schedule, jitter_problem
from jobdeck.catalog.monitors import Monitor, monitor_problems
from jobdeck.catalog.positions import Loc, Positions, YamlSyntaxError, parse
from jobdeck.catalog.spec import Spec, one_of_problems, share_fields_set
from jobdeck.catalog.types import closest
from jobdeck.units import format_size, parse_size


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
        start = "start it with 'version: 1' and 'project: NAME'"
        if data is None:
            message = f"top level: the catalog is empty; {start}"
        else:
            message = f"top level: expected a mapping of keys, found {_kind(data)}; {start}"
        line, column = positions.value((0,)) if isinstance(data, list) and data else (1, 1)
        raise CatalogError([Diagnostic(filename, line, column, message)])
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
    effective = apply_defaults(catalog)
    _check_default_jitter(effective, data, report)
    if report.diagnostics:
        raise CatalogError(report.diagnostics)
    return LoadedCatalog(effective, filename, text)


def _check_default_jitter(catalog: Catalog, data: dict[str, Any], report: _Report) -> None:
    """``defaults.jitter`` must suit every schedule that takes it (a schedule's own is
    checked by the model), reported at the default, naming the schedule."""
    if catalog.defaults.jitter is None:
        return
    for name, spec in catalog.schedules.items():
        raw = _section(data, "schedules").get(name)
        if isinstance(raw, dict) and "jitter" in raw:
            continue
        message = jitter_problem(spec)
        if message:
            report.add(
                report.positions.value(("defaults", "jitter")),
                f"defaults.jitter: schedule '{name}': {message}; or give it its own jitter",
            )


def apply_defaults(catalog: Catalog) -> Catalog:
    """Fill every item's unset fields from ``defaults`` (and schedules' zone from the top)."""
    defaults = catalog.defaults
    preset = {name: getattr(defaults, name) for name in defaults.model_fields_set}
    updates: dict[str, Any] = {}
    for section in ("schedules", "workers", "commands", "monitors"):
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
            if (
                isinstance(spec, Schedule | Monitor)
                and spec.cron is not None
                and spec.timezone is None
            ):
                change["timezone"] = catalog.timezone
            resolved[name] = share_fields_set(spec.model_copy(update=change)) if change else spec
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
        ctx = error.get("ctx") or {}
        if "[key]" in loc:
            key_loc = loc[: loc.index("[key]")]
            self.add(self.positions.key(key_loc), f"{_dotted(key_loc[:-1])}: {_plain_msg(error)}")
        elif kind == "invalid_key":
            self.add(
                self.positions.key(loc),
                f"{_dotted(loc[:-1])}: invalid key {error['input']!r}: keys are text; "
                "quote it or rename it",
            )
        elif kind == "extra_forbidden":
            key = str(loc[-1])
            known = _fields_at(loc[:-1])
            hint = closest(key, known)
            fix = (
                f"did you mean '{hint}'?"
                if hint
                else f"remove it or use one of: {', '.join(known)}"
            )
            self.add(self.positions.key(loc), f"{_dotted(loc[:-1])}: unknown key '{key}'; {fix}")
        elif kind == "missing":
            self.add(
                self.positions.key(loc[:-1]),
                f"{_dotted(loc[:-1])}: missing required key '{loc[-1]}'; {_missing_fix(loc)}",
            )
        elif kind == "catalog":
            at = ctx.get("at")
            target: Loc = (*loc, str(at)) if at else loc
            self.add(self.positions.key(target), f"{_dotted(target)}: {ctx['message']}")
        else:
            self.add(self.positions.value(loc), f"{_dotted(loc)}: {_value_msg(error)}")


def _dotted(loc: Loc) -> str:
    """``schedules.nightly.command[0]``; the top level is called ``top level``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) and text else f".{part}"
    return text.removeprefix(".") or "top level"


def _kind(value: object) -> str:
    """How a YAML reader would name the type of ``value``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _plain_msg(error: ErrorDetails) -> str:
    return error["msg"].removeprefix("Value error, ")


def _missing_fix(loc: Loc) -> str:
    if loc == ("version",):
        return "add 'version: 1'"
    if loc == ("project",):
        return "add 'project: NAME', e.g. 'project: newsroom'"
    if loc[-1] == "command":
        return "add the argv to run, e.g. command: [python, -m, app]"
    return "add it"


def _value_msg(error: ErrorDetails) -> str:
    """``<what is wrong>; <how to fix>`` for pydantic's own error types."""
    kind, loc, given = error["type"], error["loc"], error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "literal_error":
        if loc == ("version",):
            return f"unsupported version {given!r}; only version 1 exists, write 'version: 1'"
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = closest(str(given), options) if isinstance(given, str) else None
        fix = f"did you mean '{hint}'?" if hint else f"use one of: {', '.join(options)}"
        return f"{given!r} is not one of {', '.join(options)}; {fix}"
    if kind in ("model_type", "dict_type"):
        if given is None:
            return "is empty; give its keys, or remove it"
        return (
            f"expected a mapping of keys, found {_kind(given)}; write 'key: value' lines under it"
        )
    if kind == "list_type":
        if loc[-1] == "command" and isinstance(given, str):
            return (
                f"expected a list (the argv), found {_kind(given)}; write e.g. "
                "[python, -m, app], or use 'shell' for a shell command line"
            )
        return f"expected a list, found {_kind(given)}; write e.g. [a, b]"
    if kind == "too_short":
        if loc[-1] == "command":
            return "is empty; give at least the program to run, e.g. [python, -m, app]"
        return "is empty; give at least one item"
    bound = {
        "greater_than": ("greater than", "gt", "raise"),
        "greater_than_equal": ("at least", "ge", "raise"),
        "less_than": ("less than", "lt", "lower"),
        "less_than_equal": ("at most", "le", "lower"),
    }
    if kind in bound:
        words, key, fix = bound[kind]
        return f"must be {words} {_number(ctx.get(key))}, found {given!r}; {fix} it"
    simple = {
        "string_type": f"expected text, found {_kind(given)}; quote it",
        "bool_type": f"expected true or false, found {_kind(given)}; write true or false",
        "int_type": f"expected a whole number, found {_kind(given)}; write e.g. 3",
        "int_from_float": f"expected a whole number, found {_kind(given)}; write e.g. 3",
        "float_type": f"expected a number, found {_kind(given)}; write e.g. 1.5",
    }
    if kind in simple:
        return simple[kind]
    message = _plain_msg(error)
    return message if ";" in message else f"{message}; fix the value"


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
                report.add(report.positions.key(target), f"{_dotted(target)}: {message}")
            pool = spec.get("pool")
            if isinstance(pool, str) and pool not in pools:
                report.add(
                    report.positions.value((section, name, "pool")),
                    f"{section}.{name}.pool: {_unknown('pool', pool, pools)}",
                )
            _check_memory(section, name, spec, pools, defaults, report)
    for name, spec in _section(data, "workers").items():
        queue = spec.get("queue") if isinstance(spec, dict) else None
        if isinstance(queue, str) and queue not in queues:
            report.add(
                report.positions.value(("workers", name, "queue")),
                f"workers.{name}.queue: {_unknown('queue', queue, queues)}",
            )
    _check_queue_names(queues, report)
    _check_commands(_section(data, "commands"), report)
    for point, message in key_problems(data, report.positions.value):
        report.add(point, message)
    _check_monitors(data, report)


def _check_monitors(data: dict[str, Any], report: _Report) -> None:
    for loc, message in monitor_problems(data, SECTIONS.values()):
        report.add(report.positions.key(loc), f"{_dotted(loc)}: {message}")


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
    defaults: dict[str, Any],
    report: _Report,
) -> None:
    """A run's memory (its own, or the default) must fit in its pool (its own, or the default).

    A default that does not fit is reported once per pool, at ``defaults.memory``.
    """
    pool_name = spec.get("pool", defaults.get("pool"))
    pool = pools.get(pool_name) if isinstance(pool_name, str) else None
    pool_memory = pool.get("memory") if isinstance(pool, dict) else None
    loc: Loc = (section, name, "memory") if "memory" in spec else ("defaults", "memory")
    memory = spec["memory"] if "memory" in spec else defaults.get("memory")
    if not (isinstance(memory, str) and isinstance(pool_memory, str)):
        return
    try:
        run_bytes, pool_bytes = parse_size(memory), parse_size(pool_memory)
    except ValueError:
        return  # reported by the model
    if run_bytes > pool_bytes:
        fix = "lower it or grow the pool"
        if loc[0] == "defaults":
            fix = "lower it, grow the pool, or give the items in that pool their own memory"
        report.add(
            report.positions.value(loc),
            f"{_dotted(loc)}: {format_size(run_bytes)} is more than pool '{pool_name}' has "
            f"({format_size(pool_bytes)}); {fix}",
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
                    f"commands.{name}.slash: {slash} is already used by '{slashes[slash]}'; "
                    "pick another",
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
        brace = "}" if "'}'" in str(exc) and "Single" in str(exc) else "{"
        report.add(
            where,
            f"{prefix}: unbalanced '{brace}' in {arg!r}; write a placeholder as {{name}}, "
            "and a literal brace twice ('{{' or '}}')",
        )
        return
    for _, field, spec, conversion in fields:
        if field is None:
            continue
        if field in params and (spec or conversion):
            message = (
                f"placeholder {{{field}!{conversion}}} takes no format or conversion; "
                f"write {{{field}}}"
                if conversion
                else f"placeholder {{{field}:{spec}}} takes no format or conversion; "
                f"write {{{field}}}"
            )
        elif field == "":
            message = "empty placeholder {}; name a param, e.g. {title}, or write '{{}}'"
        elif field not in params:
            hint = closest(field, list(params))
            fix = (
                f"did you mean '{{{hint}}}'?"
                if hint
                else "declare it under 'params:', or write '{{' for a literal brace"
            )
            message = f"placeholder {{{field}}} names no declared param; {fix}"
        else:
            continue
        report.add(where, f"{prefix}: {message}")
