"""Commands: the tools host (SSM-managed, no SSH), an SSM document per command, and the
Slack bot on Lambda that runs them with SSM SendCommand."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from jobdeck.catalog.model import Catalog
from jobdeck.commands.spec import command_json
from jobdeck.targets.aws.ssm import command_document

HANDLER = "jobdeck.targets.aws.lambda_handler.handler"
# The files of the jobdeck package that the Lambda imports: the handler and the pure
# pieces it shares with the local bot (standard library only; no pydantic, SQLAlchemy
# or Starlette, which would lengthen every cold start).
_HANDLER_FILES = (
    "jobdeck/__init__.py",
    "jobdeck/catalog/__init__.py",
    "jobdeck/catalog/params.py",
    "jobdeck/commands/authorize.py",
    "jobdeck/commands/decide.py",
    "jobdeck/commands/spec.py",
    "jobdeck/notify/signature.py",
    "jobdeck/slack/blocks.py",
    "jobdeck/slack/requests.py",
    "jobdeck/targets/__init__.py",
    "jobdeck/targets/aws/__init__.py",
    "jobdeck/targets/aws/alert_events.py",
    "jobdeck/targets/aws/cloud_state.py",
    "jobdeck/targets/aws/keeper.py",
    "jobdeck/targets/aws/lambda_handler.py",
    "jobdeck/targets/aws/notices.py",
    "jobdeck/targets/aws/services.py",
)
# Packages whose own __init__ imports the local engine (the invoker, the bot's server):
# in the asset they are empty, so that importing one pure module loads only that.
_EMPTY_PACKAGES = (
    "jobdeck/commands/__init__.py",
    "jobdeck/notify/__init__.py",
    "jobdeck/slack/__init__.py",
)
_BUNDLED = ("slack_bolt", "slack_sdk")  # pure Python; boto3 comes with the runtime
LAMBDA_TIMEOUT = Duration.minutes(15)


class ToolsHost(Construct):
    """An Amazon Linux 2023 instance reached only through SSM: no key pair, no inbound
    rule, IMDSv2 required. Commands and warm-pool schedules run on it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        instance_type: str,
        subnets: list[ec2.ISubnet],
        security_groups: list[ec2.ISecurityGroup],
        assign_public_ip: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        if security_groups:
            group = security_groups[0]
        else:
            group = ec2.SecurityGroup(
                self, "NoInbound", vpc=vpc, allow_all_outbound=True, description="no inbound"
            )
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
        role.add_managed_policy(
            iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")
        )
        role.add_managed_policy(
            iam.ManagedPolicy.from_aws_managed_policy_name("CloudWatchAgentServerPolicy")
        )
        user_data = ec2.UserData.for_linux()
        user_data.add_commands("dnf install -y python3 python3-pip")
        self.instance = ec2.Instance(
            self,
            "Instance",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=subnets[:1]),
            associate_public_ip_address=assign_public_ip,
            instance_type=ec2.InstanceType(instance_type),
            machine_image=ec2.MachineImage.latest_amazon_linux2023(),
            security_group=group,
            role=role,
            require_imdsv2=True,
            user_data=user_data,
            ssm_session_permissions=True,
        )
        for extra in security_groups[1:]:
            self.instance.add_security_group(extra)
        if security_groups:
            # An existing subnet's zone is unknown at synth time: EC2 takes the subnet's.
            instance = self.instance.node.default_child
            assert isinstance(instance, ec2.CfnInstance)
            instance.add_property_deletion_override("AvailabilityZone")


class SlackBot(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        catalog: Catalog,
        host: ec2.Instance,
        topic: sns.Topic,
        table: dynamodb.ITable,
        asset_dir: Path,
    ) -> None:
        super().__init__(scope, construct_id)
        project = catalog.project
        stack = Stack.of(self)
        self.log_group = logs.LogGroup(
            self,
            "CommandOutput",
            log_group_name=f"/jobdeck/{project}/commands",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.documents: dict[str, ssm.CfnDocument] = {}
        for name, command in catalog.commands.items():
            self.documents[name] = ssm.CfnDocument(
                self,
                f"{name}-document",
                name=f"{project}-command-{name}",
                document_type="Command",
                document_format="JSON",
                update_method="NewVersion",
                content=command_document(name, command),
            )
        self.secret = secretsmanager.Secret(
            self,
            "SlackSecret",
            secret_name=f"jobdeck/{project}/slack",
            description="SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET of the jobdeck Slack app",
            secret_object_value={},
        )
        config = bot_config(catalog)
        # The bot's code; the keeper runs from the same asset.
        self.code = lambda_.Code.from_asset(str(bundle(asset_dir, config)))
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=f"{project}-slack-bot",
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler=HANDLER,
            code=self.code,
            timeout=LAMBDA_TIMEOUT,
            memory_size=256,
            environment={
                "SLACK_SECRET_ARN": self.secret.secret_arn,
                "JOBDECK_TOOLS_INSTANCE_ID": host.instance_id,
                "JOBDECK_COMMAND_LOG_GROUP": self.log_group.log_group_name,
                "JOBDECK_TABLE": table.table_name,
            },
            description=f"jobdeck Slack bot of project {project}",
        )
        self.secret.grant_read(self.function)
        # Suspensions, invocation keys (conditional PutItem) and audit entries.
        table.grant(self.function, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query")
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ssm:SendCommand"],
                resources=[
                    stack.format_arn(service="ssm", resource="document", resource_name=doc.ref)
                    for doc in self.documents.values()
                ]
                + [
                    stack.format_arn(
                        service="ec2", resource="instance", resource_name=host.instance_id
                    )
                ],
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["ssm:GetCommandInvocation"], resources=["*"])
        )
        # Bolt's lazy listeners invoke this function again, asynchronously.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction", "lambda:GetFunction"],
                # By name: the function's own ARN here would be a circular reference.
                resources=[
                    stack.format_arn(
                        service="lambda",
                        resource="function",
                        resource_name=f"{project}-slack-bot",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        url = self.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
        topic.add_subscription(subscriptions.LambdaSubscription(self.function))
        CfnOutput(self, "SlackRequestUrl", value=url.url, description="Slack's Request URL")


def bot_config(catalog: Catalog) -> dict[str, Any]:
    """The bot's ``commands.json``: each command as the pure modules read it, with its
    SSM document and timeout."""
    project = catalog.project
    return {
        "project": project,
        "slashes": sorted(c.slash for c in catalog.commands.values() if c.slash),
        "commands": {
            name: {
                **command_json(command),
                "document": f"{project}-command-{name}",
                "timeout_seconds": int(command.timeout.total_seconds()),
            }
            for name, command in catalog.commands.items()
        },
        # Who hears of failures that AWS reports (see alert_events).
        "notify": {
            kind: {name: list(spec.notify) for name, spec in getattr(catalog, section).items()}
            for kind, section in (
                ("schedule", "schedules"),
                ("worker", "workers"),
                ("command", "commands"),
            )
        },
    }


def bundle(asset_dir: Path, config: Mapping[str, object]) -> Path:
    """The Lambda's code folder: the handler and the pure modules it shares with the
    local bot, slack_bolt and slack_sdk, and the catalog's commands as ``commands.json``."""
    package_root = Path(__file__).resolve().parents[3]
    for relative in _HANDLER_FILES:
        target = asset_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package_root / relative, target)
    for relative in _EMPTY_PACKAGES:
        (asset_dir / relative).write_text('"""Only the pure modules, for Lambda."""\n')
    for module in _BUNDLED:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{module} is not installed; install jobdeck[aws]")
        shutil.copytree(
            Path(spec.origin).parent,
            asset_dir / module,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
    # Unsorted: the catalog's order of commands and params is the order help shows.
    (asset_dir / "jobdeck/targets/aws/commands.json").write_text(
        json.dumps(config, indent=2), encoding="utf-8"
    )
    return asset_dir
