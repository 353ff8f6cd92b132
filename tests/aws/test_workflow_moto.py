"""The synthesized workflow executed in moto's Step Functions interpreter.

moto runs as a real server on 127.0.0.1 (its Step Functions, ECS, EC2, SNS and SQS);
the test talks to it with boto3, as Scheduler and the operator would, and plays the
part of Fargate by stopping the tasks that the workflow starts (moto's tasks never end
on their own). The patches in :mod:`tests.aws.moto_patches` make moto's integrations
behave as AWS documents them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest
from moto.ecs.exceptions import EcsClientException
from moto.ecs.models import EC2ContainerServiceBackend

from tests.aws import moto_patches
from tests.aws.asl import definitions, flatten
from tests.aws.conftest import REGION, Assembly

ROLE = "arn:aws:iam::123456789012:role/jobdeck-test"
DEADLINE = 60.0
T1 = "2026-03-08T01:00:00Z"
T2 = "2026-03-08T01:01:00Z"


@pytest.fixture
def moto_url(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    moto_patches.apply(monkeypatch)
    httpx.post(
        f"{moto_server}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=10,
    ).raise_for_status()
    # Fargate's tasks end when the test stops them, not after a few DescribeTasks.
    httpx.post(
        f"{moto_server}/moto-api/state-manager/set-transition",
        json={"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}},
        timeout=10,
    ).raise_for_status()
    return moto_server


@dataclass
class Deployed:
    """The quick schedule's launcher and run machine, and what they run on, in moto."""

    sfn: Any
    ecs: Any
    sqs: Any
    launcher: str
    run: str  # the run machine of "quick" (overlap: skip)
    replace_run: str  # the run machine of "replace" (overlap: cancel_other)
    cluster: str
    notices: str  # an SQS queue subscribed to the notices topic
    schedule_input: Callable[[str, str], dict[str, Any]]


@pytest.fixture
def deployed(moto_url: str, variants: Assembly) -> Deployed:
    client = _clients(moto_url)
    ec2, ecs, sns, sqs, sfn = (client(n) for n in ("ec2", "ecs", "sns", "sqs", "stepfunctions"))
    vpc: str = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # as the stack's
    subnet: str = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group: str = ec2.create_security_group(GroupName="tasks", Description="t", VpcId=vpc)["GroupId"]
    cluster: str = ecs.create_cluster(clusterName="variants")["cluster"]["clusterArn"]
    topic: str = sns.create_topic(Name="variants-notices")["TopicArn"]
    notices: str = sqs.create_queue(QueueName="notices")["QueueUrl"]
    notices_arn = sqs.get_queue_attributes(QueueUrl=notices, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=notices_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    template = variants.template
    resources = template["Resources"]
    made: dict[str, str] = {}

    def resolve(logical: str, attribute: str | None) -> str:
        if logical in made:
            return made[logical]
        kind = resources[logical]["Type"]
        if kind == "AWS::ECS::Cluster":
            return cluster
        if kind == "AWS::EC2::Subnet":
            return subnet
        if kind == "AWS::EC2::SecurityGroup":
            return group
        if kind == "AWS::SNS::Topic":
            return topic
        if kind == "AWS::ECS::TaskDefinition":
            made[logical] = ecs.register_task_definition(
                family=logical,
                networkMode="awsvpc",
                requiresCompatibilities=["FARGATE"],
                cpu="256",
                memory="512",
                containerDefinitions=[
                    {"name": "run", "image": "app:7", "essential": True, "memory": 512}
                ],
            )["taskDefinition"]["taskDefinitionArn"]
            return made[logical]
        raise AssertionError(f"the workflow refers to {kind} {logical}, unknown to this test")

    def machine(name: str) -> str:
        logical = variants.logical_id("AWS::StepFunctions::StateMachine", StateMachineName=name)
        definition = definitions({"Resources": {logical: resources[logical]}}, resolve)[logical]
        arn: str = sfn.create_state_machine(
            name=name, definition=json.dumps(definition), roleArn=ROLE
        )["stateMachineArn"]
        made[logical] = arn
        return arn

    run = machine("variants-quick")
    replace_run = machine("variants-replace")
    launcher = machine("variants-launcher")

    def schedule_input(name: str, slot: str) -> dict[str, Any]:
        """What EventBridge Scheduler sends for ``slot`` of schedule ``name``: the
        target's input with its scheduled-time placeholder filled in."""
        schedule = variants.one("AWS::Scheduler::Schedule", Name=f"variants-{name}")
        text = flatten(schedule["Target"]["Input"], resolve)
        given: dict[str, Any] = json.loads(text.replace("<aws.scheduler.scheduled-time>", slot))
        return given

    return Deployed(sfn, ecs, sqs, launcher, run, replace_run, cluster, notices, schedule_input)


def _clients(url: str) -> Callable[[str], Any]:
    make: Any = boto3.client  # typed per service name; the names here are data

    def client(service: str) -> Any:
        return make(service, region_name=REGION, endpoint_url=url)

    return client


def _wait(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _fire(d: Deployed, slot: str, schedule: str = "quick") -> str:
    arn: str = d.sfn.start_execution(
        stateMachineArn=d.launcher,
        name=uuid.uuid4().hex,  # Scheduler names each start uniquely (moto would not)
        input=json.dumps(d.schedule_input(schedule, slot)),
    )["executionArn"]
    return arn


def _finished(d: Deployed, execution: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found: dict[str, Any] = d.sfn.describe_execution(executionArn=execution)
        return None if found["status"] == "RUNNING" else found

    result: dict[str, Any] = _wait(f"{execution} to end", done)
    return result


def _running_tasks(d: Deployed, count: int) -> list[str]:
    """Wait until ``count`` tasks were started in all; the task ARNs, oldest first."""

    def started() -> list[str] | None:
        arns: list[str] = d.ecs.list_tasks(cluster=d.cluster)["taskArns"]
        return arns if len(arns) >= count else None

    arns: list[str] = _wait(f"{count} task(s)", started)
    return arns


def _run_execution(d: Deployed, machine: str | None = None) -> str:
    def one() -> str | None:
        found = d.sfn.list_executions(stateMachineArn=machine or d.run)["executions"]
        return found[0]["executionArn"] if found else None

    arn: str = _wait("the run's execution", one)
    return arn


def _events(d: Deployed, execution: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = d.sfn.get_execution_history(
        executionArn=execution, maxResults=1000
    )["events"]
    return events


def _entered(d: Deployed, execution: str) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"]
        for e in _events(d, execution)
        if "stateEnteredEventDetails" in e
    ]


def test_a_normal_run(deployed: Deployed) -> None:
    d = deployed
    launch = _fire(d, T1)
    assert _finished(d, launch)["status"] == "SUCCEEDED"
    run = _run_execution(d)
    described = d.sfn.describe_execution(executionArn=run)
    assert described["name"] == "2026-03-08T010000Z"  # the slot, as an execution name
    assert json.loads(described["input"])["scheduled_time"] == T1
    (task,) = _running_tasks(d, 1)
    started = d.ecs.describe_tasks(cluster=d.cluster, tasks=[task])["tasks"][0]
    assert started["launchType"] == "FARGATE"
    env = started["overrides"]["containerOverrides"][0]["environment"]
    assert {"name": "JOBDECK_SCHEDULED_TIME", "value": T1} in env
    d.ecs.stop_task(cluster=d.cluster, task=task, reason=moto_patches.EXITED_OK)
    assert _finished(d, run)["status"] == "SUCCEEDED"
    assert "Notify" not in _entered(d, run)


def test_an_overlapping_start_is_skipped_and_a_slot_never_runs_twice(deployed: Deployed) -> None:
    d = deployed
    assert _finished(d, _fire(d, T1))["status"] == "SUCCEEDED"
    (task,) = _running_tasks(d, 1)
    overlapping = _finished(d, _fire(d, T2))
    assert overlapping["status"] == "SUCCEEDED"
    assert json.loads(overlapping["output"]) == {
        "schedule": "quick",
        "scheduled_time": T2,
        "status": "skipped",
        "reason": "overlap",
    }
    assert len(d.sfn.list_executions(stateMachineArn=d.run)["executions"]) == 1
    d.ecs.stop_task(cluster=d.cluster, task=task, reason=moto_patches.EXITED_OK)
    assert _finished(d, _run_execution(d))["status"] == "SUCCEEDED"
    # Scheduler delivers at least once: the same slot again does not run again.
    again = _fire(d, T1)
    assert _finished(d, again)["status"] == "SUCCEEDED"
    assert "Slot already ran" in _entered(d, again)
    assert len(d.sfn.list_executions(stateMachineArn=d.run)["executions"]) == 1
    assert len(d.ecs.list_tasks(cluster=d.cluster)["taskArns"]) == 1


def test_a_capacity_error_is_retried_then_succeeds(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = deployed
    # Fargate out of capacity for the first RunTask (moto's ECS never is).
    refused: list[bool] = []
    run_task = EC2ContainerServiceBackend.run_task

    def out_of_capacity(self: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> Any:
        if not refused:
            refused.append(True)
            raise EcsClientException("Capacity is unavailable at this time. Please try again.")
        return run_task(self, *args, **kwargs)

    monkeypatch.setattr(EC2ContainerServiceBackend, "run_task", out_of_capacity)
    _finished(d, _fire(d, T1))
    run = _run_execution(d)
    (first,) = _running_tasks(d, 1)
    assert refused == [True]
    # The next task cannot pull its image: a provisioning failure, relaunched.
    d.ecs.stop_task(
        cluster=d.cluster,
        task=first,
        reason="CannotPullContainerError: pull image manifest has been retried 5 time(s)",
    )
    second = _running_tasks(d, 2)[-1]
    d.ecs.stop_task(cluster=d.cluster, task=second, reason=moto_patches.EXITED_OK)
    assert _finished(d, run)["status"] == "SUCCEEDED"
    failures = [
        e["taskFailedEventDetails"]["error"]
        for e in _events(d, run)
        if "taskFailedEventDetails" in e
    ]
    assert failures == ["ECS.AmazonECSException", "States.TaskFailed"]
    assert _entered(d, run).count("Count relaunch") == 1
    assert "Notify" not in _entered(d, run)


def test_a_timeout_notifies_and_fails(deployed: Deployed) -> None:
    d = deployed
    _finished(d, _fire(d, T1))
    run = _run_execution(d)
    _running_tasks(d, 1)  # and never stopped: the run outlives its 10 s timeout
    ended = _finished(d, run)
    assert ended["status"] == "FAILED"
    assert ended["error"] == "jobdeck.RunFailed"
    entered = _entered(d, run)
    assert "Count relaunch" not in entered  # a timeout is not retried
    assert entered[-2:] == ["Notify", "Failed"]

    def notice() -> dict[str, Any] | None:
        found = d.sqs.receive_message(QueueUrl=d.notices, WaitTimeSeconds=1).get("Messages")
        return json.loads(found[0]["Body"]) if found else None

    message = _wait("the failure notice", notice)
    assert message["job"] == "quick"
    assert message["project"] == "variants"
    assert message["scheduled_time"] == T1
    assert message["error"]["Error"] == "States.Timeout"
    assert message["notify"] == ["slack:#ops"]
    assert len(d.ecs.list_tasks(cluster=d.cluster)["taskArns"]) == 1


def test_cancel_other_stops_the_older_run(deployed: Deployed) -> None:
    d = deployed
    assert _finished(d, _fire(d, T1, "replace"))["status"] == "SUCCEEDED"
    older = _run_execution(d, d.replace_run)
    _running_tasks(d, 1)
    assert _finished(d, _fire(d, T2, "replace"))["status"] == "SUCCEEDED"
    assert _finished(d, older)["status"] == "ABORTED"

    def newer() -> str | None:
        found = d.sfn.list_executions(stateMachineArn=d.replace_run, statusFilter="RUNNING")
        return found["executions"][0]["executionArn"] if found["executions"] else None

    newest: str = _wait("the newer run", newer)
    assert d.sfn.describe_execution(executionArn=newest)["name"] == "2026-03-08T010100Z"
    task = _running_tasks(d, 2)[-1]
    d.ecs.stop_task(cluster=d.cluster, task=task, reason=moto_patches.EXITED_OK)
    assert _finished(d, newest)["status"] == "SUCCEEDED"
