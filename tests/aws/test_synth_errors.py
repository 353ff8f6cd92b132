"""What AWS cannot run fails synth with FILE:LINE:COL errors, like `jobdeck validate`."""

from __future__ import annotations

import textwrap

import pytest

from jobdeck.catalog.load import CatalogError, load_catalog_text
from jobdeck.targets.aws.mapping import map_catalog

CANNOT_RUN = """\
version: 1
project: bad
defaults:
  memory: 3GiB
pools:
  tools: {warm: true}
schedules:
  fast:
    rate: 30s
    command: [x]
    image: i
    memory: 512MiB
  odd-rate: {rate: 90s, command: [x], image: i, memory: 1GiB}
  no-image: {cron: "0 * * * *", command: [x], memory: 1GiB}
  both-days: {cron: "0 9 1 * MON", command: [x], image: i, memory: 1GiB}
  too-big: {cron: "0 9 * * *", command: [x], image: i}
  buffered: {cron: "0 9 * * *", command: [x], image: i, memory: 1GiB, overlap: buffer_one}
  slow-stop: {cron: "0 9 * * *", command: [x], image: i, memory: 1GiB, kill_grace: 3m}
  warm-but-long: {cron: "0 9 * * *", command: [x], pool: tools, timeout: 3d}
  warm-fine: {cron: "0 9 * * *", command: [x], pool: tools}
workers:
  w:
    command: [x]
    image: i
    cpus: 0.5
    memory: 1GiB
    stop_grace: 5m
  no-image: {command: [x], memory: 1GiB}
"""

EXPECTED = [
    "c.yaml:4:3: error: defaults.memory: 3GiB does not fit a 0.25 vCPU Fargate task, "
    "which takes 512MiB to 2GiB; raise cpus to 0.5 or lower memory",
    "c.yaml:9:5: error: schedules.fast.rate: shorter than 1m, the shortest rate EventBridge "
    "Scheduler runs; raise it to 1m or more, or run it as a worker that loops",
    "c.yaml:13:14: error: schedules.odd-rate.rate: not a whole number of minutes, which AWS "
    "rates must be; round it, e.g. to 1m",
    "c.yaml:14:3: error: schedules.no-image: has no 'image', which the AWS target needs to "
    "run it on Fargate; add 'image: REPOSITORY:TAG' (or 'defaults.image'), or put it in a "
    "warm pool to run it on the tools host",
    "c.yaml:15:15: error: schedules.both-days.cron: cron '0 9 1 * MON' restricts both "
    "day-of-month (1) and day-of-week (MON); AWS cron takes only one of them; split it "
    "into two schedules, one per field",
    "c.yaml:18:72: error: schedules.slow-stop.kill_grace: longer than 120s, the most "
    "Fargate waits; lower it",
    "c.yaml:19:65: error: schedules.warm-but-long.timeout: longer than 48h, the most SSM "
    "Run Command allows",
    "c.yaml:27:5: error: workers.w.stop_grace: longer than 120s, the most Fargate waits; lower it",
    "c.yaml:28:3: error: workers.no-image: has no 'image', which the AWS target needs to "
    "run it on Fargate; add 'image: REPOSITORY:TAG' (or 'defaults.image')",
]


def test_every_problem_at_its_key() -> None:
    loaded = load_catalog_text(CANNOT_RUN, "c.yaml")  # valid for the local engine
    with pytest.raises(CatalogError) as caught:
        map_catalog(loaded)
    assert [str(d) for d in caught.value.diagnostics] == EXPECTED


def test_a_catalog_aws_can_run_maps_cleanly() -> None:
    loaded = load_catalog_text(
        textwrap.dedent(
            """\
            version: 1
            project: fine
            timezone: Europe/Berlin
            pools:
              tools: {warm: true}
            schedules:
              nightly: {cron: "0 2 * * 1-5", command: [x], image: i, cpus: 1, memory: 3GiB}
              often: {rate: 5m, command: [x], image: i}
              on-host: {cron: "@hourly", shell: "echo hi", pool: tools}
            workers:
              w: {command: [x], image: i}
            """
        ),
        "c.yaml",
    )
    mapped = map_catalog(loaded)
    by_name = {item.name: item for item in mapped.schedules}
    assert by_name["nightly"].expression == "cron(0 2 ? * MON-FRI *)"
    assert by_name["nightly"].timezone == "Europe/Berlin"
    assert by_name["nightly"].size is not None
    assert (by_name["nightly"].size.cpu, by_name["nightly"].size.memory_mib) == (1024, 3072)
    assert by_name["often"].expression == "rate(5 minutes)"
    assert by_name["often"].timezone is None
    assert by_name["on-host"].warm
    assert by_name["on-host"].size is None
    assert [w.name for w in mapped.workers] == ["w"]


def test_a_command_with_approval_is_refused_by_the_aws_target() -> None:
    text = textwrap.dedent(
        """\
        version: 1
        project: four-eyes
        commands:
          push:
            command: [x]
            approve: {users: [U0CHIEF]}
        """
    )
    with pytest.raises(CatalogError) as info:
        map_catalog(load_catalog_text(text, "c.yaml"))
    assert [str(d) for d in info.value.diagnostics] == [
        "c.yaml:6:5: error: commands.push.approve: the AWS target has no four-eyes approval "
        "yet, and the command would run there without it; remove approve or keep the command "
        "on a jobdeck engine"
    ]


def test_an_item_with_a_concurrency_key_is_refused_by_the_aws_target() -> None:
    text = textwrap.dedent(
        """\
        version: 1
        project: keys
        commands:
          vacuum:
            command: [x]
            concurrency: {key: db}
        """
    )
    with pytest.raises(CatalogError) as info:
        map_catalog(load_catalog_text(text, "c.yaml"))
    assert [str(d) for d in info.value.diagnostics] == [
        "c.yaml:6:5: error: commands.vacuum.concurrency: the AWS target has no concurrency "
        "keys yet, and the runs sharing 'db' would overlap there; remove concurrency or keep "
        "the item on a jobdeck engine"
    ]
