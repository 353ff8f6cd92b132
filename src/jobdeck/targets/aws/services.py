"""Stopping and starting a worker's ECS service for a suspension, through the ECS and
Application Auto Scaling APIs (boto3 clients are parameters; standard library only).

A suspended worker's service is set to desired count 0 and its scaling is suspended
(``DynamicScalingOutSuspended``), so that a backlog does not scale it out again. The
service is found by its tag ``jobdeck:worker``, which the stack sets.
"""

from __future__ import annotations

from typing import Any

WORKER_TAG = "jobdeck:worker"
SCALABLE_DIMENSION = "ecs:service:DesiredCount"


class NoService(LookupError):
    pass


def find_service(ecs: Any, cluster: str, worker: str) -> str:
    """The ARN of the worker's service in ``cluster``."""
    arns: list[str] = []
    for page in ecs.get_paginator("list_services").paginate(cluster=cluster):
        arns.extend(page["serviceArns"])
    for start in range(0, len(arns), 10):
        described = ecs.describe_services(
            cluster=cluster, services=arns[start : start + 10], include=["TAGS"]
        )
        for service in described["services"]:
            tags = {t["key"]: t["value"] for t in service.get("tags") or []}
            if tags.get(WORKER_TAG) == worker:
                found: str = service["serviceArn"]
                return found
    raise NoService(
        f"no ECS service of worker {worker} in cluster {cluster}; is the stack deployed?"
    )


def desired_count(ecs: Any, cluster: str, service: str) -> int:
    found = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    count: int = found["desiredCount"]
    return count


def set_worker(ecs: Any, scaling: Any, cluster: str, worker: str, desired: int | None) -> int:
    """``desired=None``: stop the worker (0 tasks, scaling suspended); a number: start it
    again with that many tasks and scaling resumed. Returns the count it had before."""
    service = find_service(ecs, cluster, worker)
    before = desired_count(ecs, cluster, service)
    suspended = desired is None
    resource = f"service/{cluster}/{service.rsplit('/', 1)[-1]}"
    targets = scaling.describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=[resource], ScalableDimension=SCALABLE_DIMENSION
    )["ScalableTargets"]
    if targets:
        scaling.register_scalable_target(
            ServiceNamespace="ecs",
            ResourceId=resource,
            ScalableDimension=SCALABLE_DIMENSION,
            SuspendedState={
                "DynamicScalingInSuspended": suspended,
                "DynamicScalingOutSuspended": suspended,
                "ScheduledScalingSuspended": suspended,
            },
        )
    if suspended or before != desired:
        ecs.update_service(cluster=cluster, service=service, desiredCount=desired or 0)
    return before
