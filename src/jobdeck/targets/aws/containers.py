"""Fargate task definitions for schedules and workers: image, argv, env, size, logs."""

from __future__ import annotations

from datetime import timedelta

from aws_cdk import Duration, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from jobdeck.catalog.model import Schedule, Worker
from jobdeck.targets.aws.secrets import split_env
from jobdeck.targets.aws.sizing import TaskSize
from jobdeck.targets.aws.workflow import CONTAINER_NAME


def entry_point(spec: Schedule | Worker) -> list[str]:
    """The whole argv as the entry point, so that an image's own ENTRYPOINT cannot change
    what runs (the catalog's argv is run as is, never through a shell)."""
    if spec.command is not None:
        return list(spec.command)
    assert spec.shell is not None
    return ["/bin/sh", "-c", spec.shell]


def task_definition(
    scope: Construct,
    construct_id: str,
    *,
    spec: Schedule | Worker,
    size: TaskSize,
    stop_after: timedelta,
    log_group: logs.ILogGroup,
    environment: dict[str, str],
    family: str | None = None,
) -> ecs.FargateTaskDefinition:
    definition = ecs.FargateTaskDefinition(
        scope, construct_id, cpu=size.cpu, memory_limit_mib=size.memory_mib, family=family
    )
    assert spec.image is not None  # checked by mapping
    plain, secrets = split_env(definition, dict(spec.env))
    definition.add_container(
        CONTAINER_NAME,
        image=ecs.ContainerImage.from_registry(spec.image),
        entry_point=entry_point(spec),
        # AWS_REGION for the SDKs, as the local engine sets it for workers.
        environment={"AWS_REGION": Stack.of(scope).region, **plain, **environment},
        secrets=secrets or None,
        working_directory=spec.workdir if spec.workdir.startswith("/") else None,
        stop_timeout=Duration.seconds(int(stop_after.total_seconds())),
        logging=ecs.LogDrivers.aws_logs(stream_prefix=construct_id, log_group=log_group),
        essential=True,
    )
    execution_role = definition.obtain_execution_role()
    # Private ECR images: pull rights for any repository the catalog names.
    execution_role.add_managed_policy(
        iam.ManagedPolicy.from_aws_managed_policy_name(
            "service-role/AmazonECSTaskExecutionRolePolicy"
        )
    )
    return definition
