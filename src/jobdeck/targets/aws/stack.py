"""The CDK app: one stack per catalog, and ``synth`` that writes its cloud assembly."""

from __future__ import annotations

import tempfile
from pathlib import Path

from aws_cdk import App, RemovalPolicy, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from jobdeck.catalog.load import LoadedCatalog
from jobdeck.targets.aws.mapping import CatalogOnAws, map_catalog
from jobdeck.targets.aws.queues import Queues
from jobdeck.targets.aws.schedules import Schedules
from jobdeck.targets.aws.store import Keeper, StateTable
from jobdeck.targets.aws.tools import SlackBot, ToolsHost
from jobdeck.targets.aws.workers import Workers

TOOLS_INSTANCE_TYPE = "t3.small"
# CDK feature flags that change what is synthesized; set here so that the assembly does
# not depend on a cdk.json next to the catalog.
CONTEXT = {
    # The IMDSv2 launch template of the tools host gets a name unique to the stack, so
    # that two projects can be deployed into one account and region.
    "@aws-cdk/aws-ec2:uniqueImdsv2TemplateName": True,
}


class JobdeckStack(Stack):
    """Everything one catalog deploys. Environment-agnostic: account and region come from
    the credentials that ``cdk deploy`` runs with."""

    def __init__(
        self, scope: Construct, construct_id: str, *, mapped: CatalogOnAws, asset_dir: Path
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"jobdeck project {mapped.project} (jobdeck deploy aws synth)",
        )
        catalog = mapped.catalog
        Tags.of(self).add("jobdeck:project", mapped.project)
        # Public subnets only and no NAT gateway: tasks get a public IP to reach ECR and
        # the AWS APIs, and no security group lets anything in.
        self.vpc = ec2.Vpc(
            self,
            "Network",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)
            ],
        )
        subnets = list(self.vpc.public_subnets)
        self.security_group = ec2.SecurityGroup(
            self, "Tasks", vpc=self.vpc, allow_all_outbound=True, description="no inbound"
        )
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=mapped.project,
            vpc=self.vpc,
            enable_fargate_capacity_providers=True,
            container_insights_v2=ecs.ContainerInsights.ENABLED,  # RunningTaskCount
        )
        self.log_group = logs.LogGroup(
            self,
            "Runs",
            log_group_name=f"/jobdeck/{mapped.project}/runs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.topic = sns.Topic(
            self,
            "Notices",
            topic_name=f"{mapped.project}-notices",
            display_name=f"jobdeck {mapped.project} failures",
            enforce_ssl=True,
        )
        self.state = StateTable(self, "State", project=mapped.project)
        self.queues = Queues(self, "Queues", catalog.queues)
        self.tools = ToolsHost(self, "ToolsHost", vpc=self.vpc, instance_type=TOOLS_INSTANCE_TYPE)
        self.bot = SlackBot(
            self,
            "SlackBot",
            catalog=catalog,
            host=self.tools.instance,
            topic=self.topic,
            table=self.state.table,
            asset_dir=asset_dir,
        )
        self.keeper = Keeper(
            self,
            "Keeper",
            project=mapped.project,
            code=self.bot.code,
            table=self.state.table,
            cluster=self.cluster,
        )
        self.schedules = Schedules(
            self,
            "Schedules",
            project=mapped.project,
            schedules=mapped.schedules,
            cluster=self.cluster,
            subnets=subnets,
            security_group=self.security_group,
            topic=self.topic,
            log_group=self.log_group,
            tools_host=self.tools.instance,
            command_log_group=self.bot.log_group,
            table=self.state.table,
        )
        self.workers = Workers(
            self,
            "Workers",
            workers=mapped.workers,
            cluster=self.cluster,
            subnets=subnets,
            security_group=self.security_group,
            queues=self.queues.by_name,
            log_group=self.log_group,
        )
        for definition in [
            *self.schedules.task_definitions.values(),
            *(service.task_definition for service in self.workers.services.values()),
        ]:
            self.queues.grant_use(definition.task_role)


def stack_name(project: str) -> str:
    return f"jobdeck-{project}"


def synth(loaded: LoadedCatalog, outdir: Path) -> Path:
    """Write the cloud assembly that ``cdk deploy --app OUTDIR`` deploys."""
    mapped = map_catalog(loaded)  # every AWS problem before jsii starts
    with tempfile.TemporaryDirectory(prefix="jobdeck-lambda-") as asset_dir:
        app = App(outdir=str(outdir), context=CONTEXT)
        JobdeckStack(app, stack_name(mapped.project), mapped=mapped, asset_dir=Path(asset_dir))
        app.synth()
    return outdir
