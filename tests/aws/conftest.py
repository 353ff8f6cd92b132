"""Synthesized assemblies, made once per session: CDK synth through jsii takes seconds.

``newsroom`` is the bundled example; ``variants`` covers what the example does not use
(a warm-pool schedule, FIFO queues, a singleton and an autoscaled worker, ...).
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

# Before aws_cdk starts its Node.js process: Node 20 works, and its end-of-life banner
# would only fill the output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from jobdeck.catalog.load import LoadedCatalog, load_catalog, load_catalog_text

if TYPE_CHECKING:
    from aws_cdk.assertions import Template

REGION = "us-east-1"
REPO = Path(__file__).resolve().parents[2]
NEWSROOM = REPO / "examples" / "newsroom" / "jobdeck.yaml"

VARIANTS = textwrap.dedent(
    """\
    version: 1
    project: variants
    timezone: America/New_York
    defaults:
      image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:7
      notify: ["slack:#ops"]
    pools:
      tools: {warm: true}
    queues:
      orders:
        fifo: true
        content_based_deduplication: true
        max_receive_count: 3
        visibility_timeout: 2m
        retention: 1d
        delay: 5s
      plain: {}
    schedules:
      report:
        cron: "0 7 * * MON-FRI"
        command: [python, -m, report, --all]
        cpus: 1
        memory: 3GiB
        overlap: allow
        timeout: 40m
        retry: {launch: 2, failure: 1, backoff: 30s}
        workdir: /srv/app
      host-cleanup:
        cron: "15 4 * * *"
        command: [/usr/local/bin/cleanup, --older-than, 7d]
        pool: tools
        timeout: 10m
        env: {LEVEL: "2"}
      quick:
        description: Short timeout and backoff, for running the workflow in tests
        cron: "* * * * *"
        command: [python, -m, quick]
        timeout: 10s
        retry: {launch: 2, backoff: 1s}
      replace:
        description: A newer slot stops the run of an older one
        cron: "*/5 * * * *"
        command: [python, -m, replace]
        timeout: 10s
        overlap: cancel_other
      queued:
        description: At most one run waits for the one before it
        cron: "*/5 * * * *"
        command: [python, -m, queued]
        timeout: 30s
        overlap: buffer_one
      paused:
        rate: 2h
        shell: "echo paused"
        enabled: false
        retry: {launch: 0}
    workers:
      order-taker:
        command: [python, -m, orders]
        queue: orders
        singleton: true
        stop_grace: 2m
      indexer:
        command: [python, -m, indexer]
        queue: plain
        autoscale: {min: 0, max: 6, backlog_per_replica: 50, cooldown: 2m}
    commands:
      restart-cache:
        description: Restart the cache
        command: [systemctl, restart, "cache@{name}"]
        params:
          name: {type: string, required: true, pattern: "[a-z]+"}
          count: {type: int, min: 1, max: 5}
        pool: tools
        allow: {users: [U1]}
    """
)


@dataclass
class Assembly:
    loaded: LoadedCatalog
    outdir: Path
    template: dict[str, Any]

    @cached_property
    def cdk(self) -> Template:
        """CDK's own assertions on the synthesized template."""
        from aws_cdk.assertions import Template

        return Template.from_json(self.template)

    def logical_id(self, kind: str, **where: Any) -> str:
        found = [
            logical
            for logical, r in self.resources(kind).items()
            if all(r["Properties"].get(k) == v for k, v in where.items())
        ]
        assert len(found) == 1, f"{len(found)} {kind} with {where}"
        return found[0]

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            logical: resource
            for logical, resource in self.template["Resources"].items()
            if resource["Type"] == kind
        }

    def one(self, kind: str, **where: Any) -> dict[str, Any]:
        """The one resource of ``kind`` whose properties include ``where``."""
        found: list[dict[str, Any]] = [
            r["Properties"]
            for r in self.resources(kind).values()
            if all(r["Properties"].get(k) == v for k, v in where.items())
        ]
        assert len(found) == 1, f"{len(found)} {kind} with {where}"
        return found[0]


def _synth(loaded: LoadedCatalog, outdir: Path) -> Assembly:
    from jobdeck.targets.aws.stack import stack_name, synth

    synth(loaded, outdir)
    template_file = outdir / f"{stack_name(loaded.catalog.project)}.template.json"
    return Assembly(loaded, outdir, json.loads(template_file.read_text()))


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto as a real server on 127.0.0.1, empty; its URL. AWS's side of the wire."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    # moto calls its own services (e.g. from Step Functions) through this port.
    monkeypatch.setenv("MOTO_PORT", str(port))
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        # moto's backends live in this process: start each test from nothing.
        httpx.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
        yield url
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def newsroom(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    return _synth(load_catalog(NEWSROOM), tmp_path_factory.mktemp("newsroom"))


@pytest.fixture(scope="session")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    folder = tmp_path_factory.mktemp("variants")
    loaded = load_catalog_text(VARIANTS, str(folder / "jobdeck.yaml"))
    return _synth(loaded, folder / "cdk.out")


STATE_KEYS = {
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
}


def create_state_table(endpoint: str, project: str, assembly: Assembly | None = None) -> str:
    """The project's state table in moto: as the assembly's template declares it, or
    with the key schema that :mod:`jobdeck.targets.aws.cloud_state` expects."""
    import boto3

    from jobdeck.targets.aws.cloud_state import table_name

    name = table_name(project)
    keys: dict[str, Any] = STATE_KEYS
    if assembly is not None:
        declared = assembly.one("AWS::DynamoDB::Table", TableName=name)
        keys = {k: declared[k] for k in ("KeySchema", "AttributeDefinitions")}
        assert declared["BillingMode"] == "PAY_PER_REQUEST"
    make: Any = boto3.client
    make("dynamodb", region_name=REGION, endpoint_url=endpoint).create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", **keys
    )
    return name
