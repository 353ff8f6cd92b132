"""The catalog's ``aws:`` section and secret ``env`` values, in the synthesized template
(CDK assertions), in the SSM documents, and refused with their place when wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from jobdeck.catalog.load import CatalogError, load_catalog_text
from tests.aws.conftest import Assembly, _synth

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
PARTIAL = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/api"
LANDED = f"""\
version: 1
project: landed
defaults:
  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:7
pools:
  tools: {{warm: true}}
schedules:
  report:
    cron: "0 7 * * *"
    command: [report]
    env:
      DB_PASSWORD: "ssm:/prod/db/password"
      DB_USER: "secretsmanager:{SECRET}:username"
      LEVEL: "2"
  host-job:
    cron: "0 8 * * *"
    command: [cleanup]
    pool: tools
    env: {{API_KEY: "secretsmanager:{PARTIAL}"}}
workers:
  taker:
    command: [take]
aws:
  vpc_id: vpc-0123456789abcdef0
  subnets: [subnet-0123456789abcdef0, subnet-0123456789abcdef1]
  security_groups: [sg-0123456789abcdef0]
  assign_public_ip: false
  permissions_boundary: arn:aws:iam::123456789012:policy/platform-boundary
  tools_instance_type: t3.micro
  tags: {{cost-center: news}}
"""


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    folder = tmp_path_factory.mktemp("landed")
    return _synth(load_catalog_text(LANDED, str(folder / "jobdeck.yaml")), folder / "cdk.out")


def test_the_stack_lands_in_the_given_network(landed: Assembly) -> None:
    assert landed.resources("AWS::EC2::VPC") == {}
    assert landed.resources("AWS::EC2::Subnet") == {}
    assert landed.resources("AWS::EC2::SecurityGroup") == {}
    network = {
        "AssignPublicIp": "DISABLED",
        "SecurityGroups": ["sg-0123456789abcdef0"],
        "Subnets": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    }
    (worker,) = landed.resources("AWS::ECS::Service").values()
    assert worker["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"] == network
    machine = landed.one("AWS::StepFunctions::StateMachine", StateMachineName="landed-report")
    text = json.dumps(machine["DefinitionString"])
    assert "AssignPublicIp" in text
    assert "DISABLED" in text
    assert "subnet-0123456789abcdef1" in text
    instance = landed.one("AWS::EC2::Instance")
    assert instance["InstanceType"] == "t3.micro"
    (interface,) = instance["NetworkInterfaces"]
    assert interface["AssociatePublicIpAddress"] is False
    assert interface["SubnetId"] == "subnet-0123456789abcdef0"
    assert interface["GroupSet"] == ["sg-0123456789abcdef0"]


def test_every_role_has_the_boundary_and_resources_the_tags(landed: Assembly) -> None:
    roles = landed.resources("AWS::IAM::Role")
    assert roles
    for role in roles.values():
        assert role["Properties"]["PermissionsBoundary"] == (
            "arn:aws:iam::123456789012:policy/platform-boundary"
        )
    table = landed.one("AWS::DynamoDB::Table")
    assert {"Key": "cost-center", "Value": "news"} in table["Tags"]


def test_secrets_are_ecs_secrets_never_plain_text(landed: Assembly) -> None:
    text = json.dumps(landed.template)
    (definition,) = [
        d["Properties"]
        for d in landed.resources("AWS::ECS::TaskDefinition").values()
        if any(
            {"Name": "JOBDECK_SCHEDULE", "Value": "report"} in c.get("Environment", [])
            for c in d["Properties"]["ContainerDefinitions"]
        )
    ]
    (container,) = definition["ContainerDefinitions"]
    names = {e["Name"] for e in container["Environment"]}
    assert "LEVEL" in names
    assert not {"DB_PASSWORD", "DB_USER"} & names
    secrets = {s["Name"]: s["ValueFrom"] for s in container["Secrets"]}
    assert secrets["DB_USER"] == f"{SECRET}:username::"
    assert "parameter/prod/db/password" in json.dumps(secrets["DB_PASSWORD"])
    assert "ssm:/prod" not in text  # no reference is left as a value
    # The execution role reads exactly these.
    landed.cdk.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": [
                                    "secretsmanager:GetSecretValue",
                                    "secretsmanager:DescribeSecret",
                                ],
                                "Resource": SECRET,
                            }
                        )
                    ]
                )
            }
        },
    )


def test_the_tools_host_reads_its_secrets_at_run_time(landed: Assembly) -> None:
    document = landed.one("AWS::SSM::Document", Name="landed-schedule-host-job")
    lines = document["Content"]["mainSteps"][0]["inputs"]["runCommand"]
    assert f'API_KEY="$(aws secretsmanager get-secret-value --secret-id {PARTIAL} ' in (
        "\n".join(lines)
    )
    assert "export API_KEY" in lines
    landed.cdk.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "secretsmanager:GetSecretValue",
                                "Resource": f"{PARTIAL}-??????",
                            }
                        )
                    ]
                )
            }
        },
    )


def test_a_failed_read_stops_the_script(tmp_path: Path) -> None:
    """The lines the document runs, in a real shell, with an `aws` that fails."""
    from jobdeck.catalog.env_refs import EnvRef
    from jobdeck.targets.aws.ssm import argv_script

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text("#!/bin/sh\nexit 254\n")
    (bin_dir / "aws").chmod(0o755)
    assert EnvRef("ssm", "/x").kind == "ssm"
    lines = argv_script(["echo", "ran"], ".", {"K": "ssm:/prod/k"})
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["/bin/sh", "-c", "\n".join(lines)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 254
    assert "ran" not in done.stdout


@pytest.mark.parametrize(
    ("snippet", "where", "message"),
    [
        (
            "aws:\n  subnets: [subnet-0123456789abcdef0]\n",
            "4:1",
            "aws.vpc_id: subnets and security",
        ),
        ("aws:\n  vpc_id: vpc-0123456789abcdef0\n", "4:1", "aws.subnets: an existing VPC"),
        ("aws:\n  vpc_id: vpc-1\n  subnets: [subnet-0123456789abcdef0]\n", "5:11", "aws.vpc_id"),
        ("aws:\n  assign_public_ip: false\n", "5:3", "aws.assign_public_ip: the VPC"),
    ],
)
def test_the_aws_section_is_checked_with_its_place(snippet: str, where: str, message: str) -> None:
    text = "version: 1\nproject: demo\nschedules: {}\n" + snippet
    with pytest.raises(CatalogError) as caught:
        load_catalog_text(text, "jobdeck.yaml")
    shown = [str(d) for d in caught.value.diagnostics]
    assert any(s.startswith(f"jobdeck.yaml:{where}: error: {message}") for s in shown), shown


def test_the_local_engine_refuses_to_apply_a_secret_reference(tmp_path: Path) -> None:
    (tmp_path / "jobdeck.yaml").write_text(LANDED, encoding="utf-8")
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
    done = subprocess.run(
        [sys.executable, "-m", "jobdeck", "--state-dir", str(tmp_path / "s"), "apply", "--yes"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[0].startswith(
        "jobdeck.yaml:12:20: error: schedules.report.env.DB_PASSWORD: names an AWS secret"
    )


def test_cfn_lint_finds_nothing_in_a_landed_stack(landed: Assembly) -> None:
    from tests.aws.asl import flattened_template
    from tests.aws.test_lint import _problems

    assert _problems(flattened_template(landed.template)) == []
