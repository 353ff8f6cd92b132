"""What each catalog item becomes on AWS, or every reason it cannot. Pure.

:func:`map_catalog` is the AWS counterpart of the loader's second layer: it checks what
only AWS refuses (a rate under a minute, a cron that ORs its day fields, a schedule
without an ``image``, a size Fargate does not have, ...) and reports each problem as a
:class:`Diagnostic` at the catalog key to fix, exactly like ``jobdeck validate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from jobdeck.catalog.load import CatalogError, Diagnostic, LoadedCatalog
from jobdeck.catalog.model import Catalog, Schedule, Worker
from jobdeck.catalog.positions import Loc, Positions, parse
from jobdeck.targets.aws.cron import UnsupportedOnAws, aws_cron, aws_rate
from jobdeck.targets.aws.sizing import InvalidFargateSize, TaskSize, fargate_size

# Fargate stops a container at most 120 s after SIGTERM.
FARGATE_MAX_STOP = timedelta(seconds=120)
# SSM Run Command's longest execution timeout (48 h).
SSM_MAX_TIMEOUT = timedelta(hours=48)


@dataclass(frozen=True)
class ScheduleOnAws:
    name: str
    spec: Schedule
    expression: str  # cron(...) or rate(...)
    timezone: str | None  # None for rates, which count elapsed time
    warm: bool  # runs on the tools host through SSM Run Command instead of ECS
    size: TaskSize | None  # None when warm


@dataclass(frozen=True)
class WorkerOnAws:
    name: str
    spec: Worker
    size: TaskSize


@dataclass(frozen=True)
class CatalogOnAws:
    catalog: Catalog
    schedules: tuple[ScheduleOnAws, ...]
    workers: tuple[WorkerOnAws, ...]

    @property
    def project(self) -> str:
        return self.catalog.project


def map_catalog(loaded: LoadedCatalog) -> CatalogOnAws:
    """The AWS mapping of a loaded catalog; raises CatalogError with every problem."""
    _, positions = parse(loaded.text)
    report = _Report(loaded.path, positions)
    catalog = loaded.catalog
    schedules = [_schedule(catalog, name, spec, report) for name, spec in catalog.schedules.items()]
    workers = [_worker(name, spec, report) for name, spec in catalog.workers.items()]
    for name, command in catalog.commands.items():
        if command.approve is not None:
            # Deny by default: deployed without it, the command would run on one word.
            report.add(
                ("commands", name),
                "approve",
                "the AWS target has no four-eyes approval yet, and the command would run "
                "there without it; remove approve or keep the command on a jobdeck engine",
            )
    for section, items in (("schedules", catalog.schedules), ("commands", catalog.commands)):
        for name, spec in items.items():
            if spec.concurrency is not None:
                # Deny by default: deployed without it, the runs sharing the key would
                # overlap on AWS.
                report.add(
                    (section, name),
                    "concurrency",
                    "the AWS target has no concurrency keys yet, and the runs sharing "
                    f"'{spec.concurrency.key}' would overlap there; remove concurrency or "
                    "keep the item on a jobdeck engine",
                )
    if report.diagnostics:
        raise CatalogError(report.diagnostics)
    return CatalogOnAws(
        catalog,
        tuple(item for item in schedules if item is not None),
        tuple(item for item in workers if item is not None),
    )


class _Report:
    def __init__(self, filename: str, positions: Positions) -> None:
        self.filename = filename
        self.positions = positions
        self.diagnostics: list[Diagnostic] = []

    def add(self, item: Loc, key: str | None, message: str) -> None:
        """Report at ``item.key`` where the file sets it, else at ``defaults.key``, else
        at the item itself."""
        target: Loc = item
        if key is not None:
            if (*item, key) in self.positions.keys:
                target = (*item, key)
            elif ("defaults", key) in self.positions.keys:
                target = ("defaults", key)
        line, column = self.positions.key(target)
        dotted = ".".join(str(part) for part in target)
        self.diagnostics.append(Diagnostic(self.filename, line, column, f"{dotted}: {message}"))


def _schedule(catalog: Catalog, name: str, spec: Schedule, report: _Report) -> ScheduleOnAws | None:
    item: Loc = ("schedules", name)
    failed = False
    expression = ""
    try:
        if spec.cron is not None:
            expression = aws_cron(spec.cron)
        elif spec.rate is not None:
            expression = aws_rate(spec.rate)
    except UnsupportedOnAws as exc:
        report.add(item, "cron" if spec.cron is not None else "rate", str(exc))
        failed = True
    pool = catalog.pools.get(spec.pool) if spec.pool else None
    warm = pool is not None and pool.warm
    size: TaskSize | None = None
    if warm:
        if spec.timeout > SSM_MAX_TIMEOUT:
            report.add(item, "timeout", "longer than 48h, the most SSM Run Command allows")
            failed = True
    else:
        failed |= not _has_image(item, spec.image, report)
        size = _size(item, spec.cpus, spec.memory, report)
        failed |= size is None
        if spec.kill_grace > FARGATE_MAX_STOP:
            report.add(item, "kill_grace", "longer than 120s, the most Fargate waits; lower it")
            failed = True
    if failed:
        return None
    zone = (spec.timezone or catalog.timezone) if spec.cron is not None else None
    return ScheduleOnAws(name, spec, expression, zone, warm, size)


def _worker(name: str, spec: Worker, report: _Report) -> WorkerOnAws | None:
    item: Loc = ("workers", name)
    failed = not _has_image(item, spec.image, report)
    size = _size(item, spec.cpus, spec.memory, report)
    if spec.stop_grace > FARGATE_MAX_STOP:
        report.add(item, "stop_grace", "longer than 120s, the most Fargate waits; lower it")
        failed = True
    if failed or size is None:
        return None
    return WorkerOnAws(name, spec, size)


def _has_image(item: Loc, image: str | None, report: _Report) -> bool:
    warm_ok = item[0] == "schedules"
    if image:
        return True
    report.add(
        item,
        None,
        "has no 'image', which the AWS target needs to run it on Fargate; add "
        "'image: REPOSITORY:TAG' (or 'defaults.image')"
        + (", or put it in a warm pool to run it on the tools host" if warm_ok else ""),
    )
    return False


def _size(item: Loc, cpus: float | None, memory: int | None, report: _Report) -> TaskSize | None:
    try:
        return fargate_size(cpus, memory)
    except InvalidFargateSize as exc:
        report.add(item, exc.field, str(exc))
        return None
