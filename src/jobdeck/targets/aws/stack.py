"""The CDK app: one stack per catalog, and ``synth`` that writes its cloud assembly."""

from __future__ import annotations

import tempfile
from pathlib import Path

from aws_cdk import App, RemovalPolicy, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from jobdeck.catalog.aws import Aws
from jobdeck.catalog.env_refs import refs_of
from jobdeck.catalog.load import LoadedCatalog
from jobdeck.targets.aws.alerts import Alerts
from jobdeck.targets.aws.mapping import CatalogOnAws, map_catalog
from jobdeck.targets.aws.queues import Queues
from jobdeck.targets.aws.schedules import Schedules
from jobdeck.targets.aws.secrets import host_statements
from jobdeck.targets.aws.store import Keeper, StateTable
from jobdeck.targets.aws.tools import SlackBot, ToolsHost
from jobdeck.targets.aws.workers import Workers

UNKNOWN_ZONE = "unknown"
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
        settings = catalog.aws or Aws()
        for key, value in settings.tags.items():
            Tags.of(self).add(key, value)
        subnets: list[ec2.ISubnet]
        if settings.vpc_id is None:
            # Public subnets only and no NAT gateway: tasks get a public IP to reach ECR
            # and the AWS APIs, and no security group lets anything in.
            self.vpc: ec2.IVpc = ec2.Vpc(
                self,
                "Network",
                max_azs=2,
                nat_gateways=0,
                subnet_configuration=[
                    ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)
                ],
            )
            subnets = list(self.vpc.public_subnets)
        else:
            # The platform team's network, as the catalog names it; nothing is looked up
            # at synth time, so synth needs no credentials.
            subnets = [
                # The zone is not known at synth time; the host's template leaves it out
                # and EC2 takes the subnet's own (see ToolsHost).
                ec2.Subnet.from_subnet_attributes(
                    self, f"Subnet{index}", subnet_id=subnet, availability_zone=UNKNOWN_ZONE
                )
                for index, subnet in enumerate(settings.subnets)
            ]
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Network",
                vpc_id=settings.vpc_id,
                availability_zones=[UNKNOWN_ZONE] * len(settings.subnets),
                private_subnet_ids=list(settings.subnets),
            )
        groups: list[ec2.ISecurityGroup] = [
            ec2.SecurityGroup.from_security_group_id(self, f"Group{index}", group)
            for index, group in enumerate(settings.security_groups)
        ]
        if not groups:
            groups = [
                ec2.SecurityGroup(
                    self, "Tasks", vpc=self.vpc, allow_all_outbound=True, description="no inbound"
                )
            ]
        self.security_groups = groups
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
        self.tools = ToolsHost(
            self,
            "ToolsHost",
            vpc=self.vpc,
            instance_type=settings.tools_instance_type,
            subnets=subnets,
            security_groups=groups if settings.security_groups else [],
            assign_public_ip=settings.assign_public_ip,
        )
        # The secrets that commands and warm schedules name, read on the host.
        host_refs = [
            ref
            for spec in [*catalog.commands.values(), *(s.spec for s in mapped.schedules if s.warm)]
            for ref in refs_of(dict(spec.env)).values()
        ]
        for statement in host_statements(self, host_refs):
            self.tools.instance.add_to_role_policy(statement)
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
            security_groups=groups,
            assign_public_ip=settings.assign_public_ip,
            topic=self.topic,
            log_group=self.log_group,
            tools_host=self.tools.instance,
            command_log_group=self.bot.log_group,
            table=self.state.table,
        )
        self.alerts = Alerts(
            self,
            "Alerts",
            project=mapped.project,
            function=self.bot.function,
            cluster=self.cluster,
            missed=self.schedules.missed,
        )
        self.workers = Workers(
            self,
            "Workers",
            project=mapped.project,
            workers=mapped.workers,
            cluster=self.cluster,
            subnets=subnets,
            security_groups=groups,
            assign_public_ip=settings.assign_public_ip,
            queues=self.queues.by_name,
            log_group=self.log_group,
        )
        for definition in [
            *self.schedules.task_definitions.values(),
            *(service.task_definition for service in self.workers.services.values()),
        ]:
            self.queues.grant_use(definition.task_role)
        if settings.permissions_boundary:
            iam.PermissionsBoundary.of(self).apply(
                iam.ManagedPolicy.from_managed_policy_arn(
                    self, "Boundary", settings.permissions_boundary
                )
            )


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
