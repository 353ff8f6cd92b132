"""Suspending a worker in AWS (moto's ECS and Application Auto Scaling over HTTP): the
CLI sets its service to zero, the keeper holds it there after a deploy raised it again,
and ends the suspension at its ``until`` with nothing else running."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from jobdeck.targets.aws.cloud_state import CloudState, CloudSuspension, table_name
from jobdeck.targets.aws.keeper import keep
from tests.aws.conftest import REGION, VARIANTS, create_state_table


def _client(url: str, service: str) -> Any:
    make: Any = boto3.client
    return make(service, region_name=REGION, endpoint_url=url)


def _service(url: str, worker: str, desired: int) -> str:
    ecs = _client(url, "ecs")
    ecs.create_cluster(clusterName="variants")
    ecs.register_task_definition(
        family=worker,
        containerDefinitions=[{"name": "run", "image": "app:7", "memory": 512}],
    )
    arn: str = ecs.create_service(
        cluster="variants",
        serviceName=f"variants-{worker}-XYZ",  # as CloudFormation names it
        taskDefinition=worker,
        desiredCount=desired,
        tags=[{"key": "jobdeck:worker", "value": worker}],
    )["service"]["serviceArn"]
    return arn


def _desired(url: str, service: str) -> int:
    found = _client(url, "ecs").describe_services(cluster="variants", services=[service])
    count: int = found["services"][0]["desiredCount"]
    return count


def _cli(url: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    catalog = folder / "jobdeck.yaml"
    catalog.write_text(VARIANTS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
    env.update(AWS_ENDPOINT_URL=url, JOBDECK_USER="ana@ops")
    return subprocess.run(
        [sys.executable, "-m", "jobdeck", "-f", str(catalog), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_suspended_worker_stays_at_zero_through_a_deploy(
    moto_server: str, tmp_path: Path
) -> None:
    create_state_table(moto_server, "variants")
    service = _service(moto_server, "order-taker", 1)
    done = _cli(moto_server, tmp_path, "suspend", "order-taker", "--target", "aws", "--reason", "x")
    assert done.returncode == 0, done.stderr
    assert _desired(moto_server, service) == 0
    # A deploy that changes the service sets the template's desired count again.
    ecs, scaling = _client(moto_server, "ecs"), _client(moto_server, "application-autoscaling")
    ecs.update_service(cluster="variants", service=service, desiredCount=1)
    state = CloudState(_client(moto_server, "dynamodb"), table_name("variants"))
    now = datetime.now(UTC)
    assert keep(state, ecs, scaling, "variants", now) == {"held": 1, "expired": 0}
    assert _desired(moto_server, service) == 0
    assert keep(state, ecs, scaling, "variants", now) == {"held": 0, "expired": 0}
    done = _cli(moto_server, tmp_path, "resume", "order-taker", "--target", "aws")
    assert done.returncode == 0, done.stderr
    assert _desired(moto_server, service) == 1  # the catalog's replicas


def test_the_keeper_ends_an_expired_suspension(moto_server: str) -> None:
    create_state_table(moto_server, "variants")
    service = _service(moto_server, "indexer", 0)
    scaling = _client(moto_server, "application-autoscaling")
    resource = f"service/variants/{service.rsplit('/', 1)[-1]}"
    scaling.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=resource,
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=0,
        MaxCapacity=6,
    )
    state = CloudState(_client(moto_server, "dynamodb"), table_name("variants"))
    now = datetime(2026, 3, 8, 1, 0, tzinfo=UTC)
    until = now + timedelta(minutes=30)
    state.suspend(CloudSuspension("worker", "indexer", "reindex", "ana@ops", now, until, 2))
    ecs = _client(moto_server, "ecs")
    keep(state, ecs, scaling, "variants", now)
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[resource])[
        "ScalableTargets"
    ]
    assert target["SuspendedState"]["DynamicScalingOutSuspended"] is True
    assert keep(state, ecs, scaling, "variants", until) == {"held": 0, "expired": 1}
    assert state.suspensions() == []
    assert _desired(moto_server, service) == 2
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[resource])[
        "ScalableTargets"
    ]
    assert target["SuspendedState"]["DynamicScalingOutSuspended"] is False
    (entry,) = state.audit(10)
    assert (entry["action"], entry["target"], entry["outcome"]) == (
        "resume",
        "worker/indexer",
        "expired",
    )
