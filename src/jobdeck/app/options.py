"""How ``jobdeck serve`` was asked to run: the application's options."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from jobdeck.cluster.leadership import DEFAULT_LEASE
from jobdeck.execute.pools import Mode


@dataclass
class Options:
    state_dir: Path
    store_url: str | None = None
    public_url: str | None = None  # how links in notifications reach the dashboard
    sqs_url: str | None = None  # the SQS-compatible endpoint workers are pointed at
    isolation: Mode = "auto"
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # Stop the worker processes at shutdown, while the loops (the SQS endpoint they use
    # among them) still serve, recording them cancelled with reason ``shutdown``; else
    # they go on and the next start adopts them.
    stop_workers_at_exit: bool = False
    # Variables of ``environ`` that runs get besides the basics (``--pass-env``).
    pass_env: tuple[str, ...] = ()
    # The leader's lease (``--lease``), and when a silent node's runs are lost
    # (``--lost-after``, default twice the lease); see docs/ha.md.
    lease: timedelta = DEFAULT_LEASE
    lost_after: timedelta | None = None
    version: str = "unknown"
    # Where the other nodes reach this one's HTTP API (``serve --advertise``; default:
    # derived from the bind address): they fetch the logs of its runs there.
    advertise_url: str | None = None


# The longest a shutdown waits for worker processes beyond their stop_grace.
SHUTDOWN_SLACK = 10.0
