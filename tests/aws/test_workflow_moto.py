"""The synthesized workflow executed in moto's Step Functions interpreter.

moto runs as a real server on 127.0.0.1 (its Step Functions, ECS, EC2, SNS and SQS);
the test talks to it with boto3, as Scheduler and the operator would, and plays the
part of Fargate by stopping the tasks that the workflow starts (moto's tasks never end
on their own). The patches in :mod:`tests.aws.moto_patches` make moto's integrations
behave as AWS documents them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.ecs.exceptions import EcsClientException
from moto.ecs.models import EC2ContainerServiceBackend

from tests.aws import moto_patches
from tests.aws.asl import definitions, flatten
from tests.aws.conftest import REGION, VARIANTS, Assembly, create_state_table

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
    queued_run: str  # the run machine of "queued" (overlap: buffer_one)
    cluster: str
    notices: str  # an SQS queue subscribed to the notices topic
    host_run: str  # the run machine of "host-cleanup" (warm pool, overlap: skip)
    ssm: Any
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
    state_table = create_state_table(moto_url, "variants", variants)
    template = variants.template
    resources = template["Resources"]
    made: dict[str, str] = {}

    def resolve(logical: str, attribute: str | None) -> str:
        if logical in made:
            return made[logical]
        if logical == "AWS::Region":
            return REGION
        kind = resources[logical]["Type"]
        if kind == "AWS::ECS::Cluster":
            return cluster
        if kind == "AWS::EC2::Subnet":
            return subnet
        if kind == "AWS::EC2::SecurityGroup":
            return group
        if kind == "AWS::SNS::Topic":
            return topic
        if kind == "AWS::DynamoDB::Table":
            return state_table
        if kind == "AWS::Logs::LogGroup":
            return str(resources[logical]["Properties"]["LogGroupName"])
        if kind == "AWS::EC2::Instance":
            if logical not in made:
                made[logical] = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)[
                    "Instances"
                ][0]["InstanceId"]
            return made[logical]
        if kind == "AWS::SSM::Document":
            properties = resources[logical]["Properties"]
            client("ssm").create_document(
                Name=properties["Name"],
                Content=json.dumps(properties["Content"]),
                DocumentType="Command",
                DocumentFormat="JSON",
            )
            made[logical] = properties["Name"]
            return made[logical]
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
    queued_run = machine("variants-queued")
    launcher = machine("variants-launcher")
    host_run = machine("variants-host-cleanup")

    def schedule_input(name: str, slot: str) -> dict[str, Any]:
        """What EventBridge Scheduler sends for ``slot`` of schedule ``name``: the
        target's input with its scheduled-time placeholder filled in."""
        schedule = variants.one("AWS::Scheduler::Schedule", Name=f"variants-{name}")
        text = flatten(schedule["Target"]["Input"], resolve)
        given: dict[str, Any] = json.loads(text.replace("<aws.scheduler.scheduled-time>", slot))
        return given

    return Deployed(
        sfn,
        ecs,
        sqs,
        launcher,
        run,
        replace_run,
        queued_run,
        cluster,
        notices,
        host_run,
        client("ssm"),
        schedule_input,
    )


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


def test_buffer_one_keeps_one_run_waiting(deployed: Deployed) -> None:
    d = deployed
    T3 = "2026-03-08T01:02:00Z"

    def execution(name: str) -> str:
        def found() -> str | None:
            for e in d.sfn.list_executions(stateMachineArn=d.queued_run)["executions"]:
                if e["name"] == name:
                    arn: str = e["executionArn"]
                    return arn
            return None

        arn: str = _wait(f"execution {name}", found)
        return arn

    _finished(d, _fire(d, T1, "queued"))
    first = execution("2026-03-08T010000Z")
    (task,) = _running_tasks(d, 1)
    _finished(d, _fire(d, T2, "queued"))
    second = execution("2026-03-08T010100Z")
    _wait("the second run to wait", lambda: "Wait for older run" in _entered(d, second))
    _finished(d, _fire(d, T3, "queued"))
    third = _finished(d, execution("2026-03-08T010200Z"))
    assert third["status"] == "SUCCEEDED"
    assert json.loads(third["output"])["status"] == "skipped"
    assert d.sfn.describe_execution(executionArn=second)["status"] == "RUNNING"
    assert len(d.ecs.list_tasks(cluster=d.cluster)["taskArns"]) == 1
    d.ecs.stop_task(cluster=d.cluster, task=task, reason=moto_patches.EXITED_OK)
    assert _finished(d, first)["status"] == "SUCCEEDED"
    later = _running_tasks(d, 2)[-1]  # the waiting run starts once the first has ended
    d.ecs.stop_task(cluster=d.cluster, task=later, reason=moto_patches.EXITED_OK)
    assert _finished(d, second)["status"] == "SUCCEEDED"


def _cli(moto_url: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, with AWS (moto) at AWS_ENDPOINT_URL."""
    catalog = folder / "jobdeck.yaml"
    catalog.write_text(VARIANTS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
    env.update(AWS_ENDPOINT_URL=moto_url, JOBDECK_USER="ana@ops")
    return subprocess.run(
        [sys.executable, "-m", "jobdeck", "-f", str(catalog), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_schedule_suspended_in_aws_skips_its_slots_until_resumed(
    deployed: Deployed, moto_url: str, tmp_path: Path
) -> None:
    d = deployed
    done = _cli(moto_url, tmp_path, "suspend", "quick", "--target", "aws", "--reason", "bad feed")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "suspended schedule quick in AWS: bad feed"
    launch = _fire(d, T1)
    assert _finished(d, launch)["status"] == "SUCCEEDED"
    assert _entered(d, launch)[-1] == "Skipped (suspended)"
    output = json.loads(d.sfn.describe_execution(executionArn=launch)["output"])
    assert output["reason"] == "suspended"
    assert output["suspended_by"] == "ana@ops"
    assert d.sfn.list_executions(stateMachineArn=d.run)["executions"] == []
    assert d.ecs.list_tasks(cluster=d.cluster)["taskArns"] == []

    shown = _cli(moto_url, tmp_path, "plan", "--target", "aws", "--json")
    assert shown.returncode == 0, shown.stderr
    (held,) = json.loads(shown.stdout)["suspensions"]
    assert (held["kind"], held["name"], held["created_by"]) == ("schedule", "quick", "ana@ops")

    done = _cli(moto_url, tmp_path, "resume", "quick", "--target", "aws")
    assert done.returncode == 0, done.stderr
    launch = _fire(d, T2)
    assert _finished(d, launch)["status"] == "SUCCEEDED"
    assert "Skipped (suspended)" not in _entered(d, launch)
    _running_tasks(d, 1)
    audit = _cli(moto_url, tmp_path, "audit", "--target", "aws", "--json")
    assert [(e["action"], e["target"], e["actor"]) for e in json.loads(audit.stdout)] == [
        ("resume", "schedule/quick", "ana@ops"),
        ("suspend", "schedule/quick", "ana@ops"),
    ]


def test_a_suspension_ends_at_its_until_with_nothing_running(
    deployed: Deployed, moto_url: str, tmp_path: Path
) -> None:
    """The launcher compares the slot's time with ``until``: no engine, no keeper."""
    d = deployed
    until = "2026-03-08T01:00:30Z"  # after T1, before T2
    done = _cli(
        moto_url, tmp_path, "suspend", "quick", "--target", "aws", "--reason", "x", "--until", until
    )
    assert done.returncode == 0, done.stderr
    first = _fire(d, T1)
    assert _entered(d, _wait_end(d, first))[-1] == "Skipped (suspended)"
    second = _fire(d, T2)
    assert "Skipped (suspended)" not in _entered(d, _wait_end(d, second))
    _running_tasks(d, 1)


def _wait_end(d: Deployed, execution: str) -> str:
    _finished(d, execution)
    return execution


def test_cli_says_what_is_missing_without_credentials(tmp_path: Path) -> None:
    catalog = tmp_path / "jobdeck.yaml"
    catalog.write_text(VARIANTS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBDECK_", "AWS_"))}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none")
    )
    env.update(AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true")
    done = subprocess.run(
        [sys.executable, "-m", "jobdeck", "-f", str(catalog), "audit", "--target", "aws"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: no AWS credentials: set AWS_PROFILE")


def test_a_warm_schedule_runs_once_per_slot_on_the_tools_host(deployed: Deployed) -> None:
    d = deployed
    # Scheduler delivers the slot twice: one SendCommand.
    first, second = _fire(d, T1, "host-cleanup"), _fire(d, T1, "host-cleanup")
    for launch in (first, second):
        assert _finished(d, launch)["status"] == "SUCCEEDED"
    run = _run_execution(d, d.host_run)
    assert _finished(d, run)["status"] == "SUCCEEDED"
    (sent,) = d.ssm.list_commands()["Commands"]
    assert sent["DocumentName"] == "variants-schedule-host-cleanup"
    assert sent["Comment"] == f"jobdeck host-cleanup {T1}"
    assert _entered(d, run)[-1] == "Succeeded"
    assert "Read command" in _entered(d, run)


def _host_outcomes(monkeypatch: pytest.MonkeyPatch, outcomes: list[tuple[str, str]]) -> None:
    """The tools host's results, per command in the order they are sent (moto's commands
    always succeed); the last outcome repeats."""
    from moto.ssm.models import Command

    original = Command.invocation_response
    order: list[str] = []

    def response(self: Command, instance_id: str, plugin_name: str) -> dict[str, Any]:
        found: dict[str, Any] = original(self, instance_id, plugin_name)
        if self.command_id not in order:
            order.append(self.command_id)
        status, details = outcomes[min(order.index(self.command_id), len(outcomes) - 1)]
        return {**found, "Status": status, "StatusDetails": details}

    monkeypatch.setattr(Command, "invocation_response", response)


def test_a_warm_command_never_delivered_is_relaunched(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = deployed
    _host_outcomes(monkeypatch, [("Failed", "Undeliverable"), ("Success", "Success")])
    _finished(d, _fire(d, T1, "host-cleanup"))
    run = _run_execution(d, d.host_run)
    assert _finished(d, run)["status"] == "SUCCEEDED"
    assert "Count relaunch" in _entered(d, run)
    assert len(d.ssm.list_commands()["Commands"]) == 2


def test_a_failed_warm_command_notifies_with_its_logs(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = deployed
    _host_outcomes(monkeypatch, [("Failed", "Failed")])
    _finished(d, _fire(d, T1, "host-cleanup"))
    run = _run_execution(d, d.host_run)
    ended = _finished(d, run)
    assert ended["status"] == "FAILED"
    assert _entered(d, run)[-2:] == ["Notify", "Failed"]
    assert len(d.ssm.list_commands()["Commands"]) == 1  # retry.failure is 0

    def notice() -> dict[str, Any] | None:
        found = d.sqs.receive_message(QueueUrl=d.notices, WaitTimeSeconds=1).get("Messages")
        return json.loads(found[0]["Body"]) if found else None

    message = _wait("the failure notice", notice)
    assert (message["job"], message["scheduled_time"]) == ("host-cleanup", T1)
    assert message["error"]["Error"] == "SSM.Failed"
    assert message["logs"].startswith(f"https://{REGION}.console.aws.amazon.com/cloudwatch/")
    assert message["logs"].endswith("$252Fjobdeck$252Fvariants$252Fcommands")
