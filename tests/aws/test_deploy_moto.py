"""`jobdeck deploy aws diff` and `deploy` as a user runs them (the real CLI in a child
process), against moto's CloudFormation, S3, SSM and STS over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from jobdeck.targets.aws.cloud_state import CloudState, CloudSuspension, table_name
from tests.aws.conftest import NEWSROOM, REGION, Assembly, create_state_table

ACCOUNT = "123456789012"


def _client(url: str, service: str) -> Any:
    make: Any = boto3.client
    return make(service, region_name=REGION, endpoint_url=url)


def _jobdeck(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
    env.update(AWS_ENDPOINT_URL=url, AWS_DEFAULT_REGION=REGION, JOBDECK_USER="ana@ops")
    return subprocess.run(
        [sys.executable, "-m", "jobdeck", "-f", str(NEWSROOM), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_diff_lists_changes_and_cloud_suspensions(moto_server: str, newsroom: Assembly) -> None:
    resources = newsroom.template["Resources"]
    topic = newsroom.logical_id("AWS::SNS::Topic", TopicName="newsroom-notices")
    deployed = {
        "Resources": {
            topic: {
                "Type": "AWS::SNS::Topic",
                "Properties": {**resources[topic]["Properties"], "DisplayName": "old name"},
            },
            "OldQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "old"}},
        }
    }
    _client(moto_server, "cloudformation").create_stack(
        StackName="jobdeck-newsroom", TemplateBody=json.dumps(deployed)
    )
    create_state_table(moto_server, "newsroom")
    state = CloudState(_client(moto_server, "dynamodb"), table_name("newsroom"))
    now = datetime.now(UTC)
    state.suspend(
        CloudSuspension("schedule", "ranking-aggregate", "bad feed", "ana@ops", now, None)
    )

    done = _jobdeck(moto_server, "deploy", "aws", "diff", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    by_name = {c["name"]: c for c in shown["changes"]}
    assert by_name[topic] == {
        "action": "change",
        "kind": "AWS::SNS::Topic",
        "name": topic,
        "diff": ["DisplayName"],
    }
    assert by_name["OldQueue"]["action"] == "remove"
    assert sum(c["action"] == "add" for c in shown["changes"]) == len(resources) - 1
    (held,) = shown["suspensions"]
    assert (held["name"], held["reason"]) == ("ranking-aggregate", "bad feed")

    text = _jobdeck(moto_server, "deploy", "aws", "diff")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert f"~ AWS::SNS::Topic {topic} (DisplayName)" in lines
    assert "- AWS::SQS::Queue OldQueue" in lines
    assert f"Plan: {len(resources) - 1} to add, 1 to change, 1 to remove." in lines
    assert "  ! schedule ranking-aggregate: by ana@ops: bad feed" in lines


def test_deploy_says_when_the_account_is_not_bootstrapped(moto_server: str) -> None:
    done = _jobdeck(moto_server, "deploy", "aws", "deploy")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: account {ACCOUNT} is not bootstrapped for the CDK in {REGION}: "
        f"run `npx aws-cdk bootstrap aws://{ACCOUNT}/{REGION}` once"
    )


# moto creates what its CloudFormation knows and warns about the rest; its IAM then refuses
# policies that name the resources it skipped. So the whole stack cannot be created in
# moto: the CLI is run up to the change set, and the change set's life (create, update,
# no change, progress) is tested with a template that moto can create.
@pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")
def test_deploy_publishes_assets_then_applies_a_change_set(moto_server: str) -> None:
    _client(moto_server, "ssm").put_parameter(
        Name="/cdk-bootstrap/hnb659fds/version", Value="30", Type="String"
    )
    bucket = f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}"
    _client(moto_server, "s3").create_bucket(Bucket=bucket)
    done = _jobdeck(moto_server, "deploy", "aws", "deploy")
    assert "deploying stack jobdeck-newsroom" in done.stdout, done.stderr
    listed = _client(moto_server, "s3").list_objects_v2(Bucket=bucket)["Contents"]
    keys = [o["Key"] for o in listed]
    assert any(k.endswith(".zip") for k in keys)  # the bot's code
    assert any(k.endswith(".json") for k in keys)  # the template
    assert "Traceback" not in done.stderr
    if done.returncode != 0:  # moto's limits, reported as one line
        assert done.stderr.startswith("error: AWS refused:"), done.stderr


def test_a_change_set_creates_updates_and_reports_progress(moto_server: str) -> None:
    from jobdeck.targets.aws.deploy import apply_change_set

    s3 = _client(moto_server, "s3")
    s3.create_bucket(Bucket="assets")
    cloudformation = _client(moto_server, "cloudformation")

    def template(display: str) -> str:
        body = {
            "Resources": {
                "Notices": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": display}},
                "Jobs": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "jobs"}},
            }
        }
        s3.put_object(Bucket="assets", Key=f"{display}.json", Body=json.dumps(body))
        return f"https://s3.{REGION}.amazonaws.com/assets/{display}.json"

    said: list[str] = []
    status = apply_change_set(
        cloudformation, "demo", template("one"), None, {"a": "b"}, said.append, poll=0.1
    )
    assert status == "CREATE_COMPLETE"
    # moto records the stack's own events (AWS adds one per resource).
    assert said[-1] == "CREATE_COMPLETE AWS::CloudFormation::Stack demo"
    assert _client(moto_server, "sqs").get_queue_url(QueueName="jobs")["QueueUrl"]
    said.clear()
    status = apply_change_set(
        cloudformation, "demo", template("two"), None, {}, said.append, poll=0.1
    )
    assert status == "UPDATE_COMPLETE"
    assert said[-1] == "UPDATE_COMPLETE AWS::CloudFormation::Stack demo"
    assert not any("CREATE_IN_PROGRESS" in line for line in said)  # only the new events


def test_diff_says_when_node_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
    env["PATH"] = str(tmp_path)  # no node there
    done = subprocess.run(
        [sys.executable, "-m", "jobdeck", "-f", str(NEWSROOM), "deploy", "aws", "diff"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: Node.js is missing: the AWS CDK runs on it; install Node.js 20 or newer"
    )
