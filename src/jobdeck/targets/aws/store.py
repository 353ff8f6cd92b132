"""The project's DynamoDB table: suspensions, the bot's audit log and invocation keys.

One table, one partition per kind of item (``pk``), the item's own key in ``sk``:

* ``suspension`` / ``KIND#NAME``: who suspended what, why, and until when;
* ``audit`` / ``<ISO time>#<random>``: every attempt through the bot and every
  suspension or resumption, newest last;
* ``invocation`` / ``slack:<kind>:<trigger or action id>``: claimed with a conditional
  write before anything runs, so that one slash command or one click runs at most once.

The table is not owned by the template's contents: a deploy changes its settings, never
its items, so a suspension outlives every deploy.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from jobdeck.targets.aws.cloud_state import EXPIRES, table_name


def deny_plain_http(actions: list[str], resources: list[str]) -> iam.PolicyStatement:
    """The statement that refuses every request not made over TLS."""
    return iam.PolicyStatement(
        sid="AllowTlsRequestsOnly",
        effect=iam.Effect.DENY,
        principals=[iam.AnyPrincipal()],
        actions=actions,
        resources=resources,
        conditions={"Bool": {"aws:SecureTransport": "false"}},
    )


class StateTable(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, project: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=table_name(project),
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=EXPIRES,
            # Suspensions and the audit log outlive the stack.
            removal_policy=RemovalPolicy.RETAIN,
            deletion_protection=True,
            # A table's policy cannot name the table's own ARN (a circular reference);
            # '*' in a resource policy means this table.
            resource_policy=iam.PolicyDocument(statements=[deny_plain_http(["dynamodb:*"], ["*"])]),
        )


KEEPER_HANDLER = "jobdeck.targets.aws.keeper.handler"


class Keeper(Construct):
    """The keeper function (:mod:`.keeper`): every minute, and whenever the stack's
    status changes (a deploy ended), it ends expired suspensions and holds suspended
    workers at zero tasks."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        code: lambda_.Code,
        table: dynamodb.ITable,
        cluster: ecs.ICluster,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=f"{project}-jobdeck-keeper",
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler=KEEPER_HANDLER,
            code=code,
            timeout=Duration.minutes(1),
            memory_size=128,
            environment={"JOBDECK_TABLE": table.table_name, "JOBDECK_CLUSTER": project},
            description=f"jobdeck project {project}: ends expired suspensions, holds them",
        )
        table.grant(
            self.function,
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:DeleteItem",
        )
        on_cluster = {"ArnEquals": {"ecs:cluster": cluster.cluster_arn}}
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ecs:ListServices"], resources=["*"], conditions=on_cluster
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ecs:DescribeServices", "ecs:UpdateService"],
                resources=[
                    stack.format_arn(
                        service="ecs", resource="service", resource_name=f"{project}/*"
                    )
                ],
            )
        )
        # Application Auto Scaling has no resource-level permissions.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:RegisterScalableTarget",
                ],
                resources=["*"],
            )
        )
        target = events_targets.LambdaFunction(self.function, retry_attempts=2)
        events.Rule(
            self,
            "EveryMinute",
            description=f"jobdeck {project}: the keeper, every minute",
            schedule=events.Schedule.rate(Duration.minutes(1)),
            targets=[target],
        )
        events.Rule(
            self,
            "AfterDeploy",
            description=f"jobdeck {project}: the keeper, after each change of the stack",
            event_pattern=events.EventPattern(
                source=["aws.cloudformation"],
                detail_type=["CloudFormation Stack Status Change"],
                detail={
                    "stack-id": [stack.stack_id],
                    "status-details": {"status": ["UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"]},
                },
            ),
            targets=[target],
        )
