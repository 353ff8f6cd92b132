"""The EventBridge rules and the queue that bring AWS's own failure events to the bot's
function, which sends them to the catalog's ``notify`` targets (:mod:`.alert_events`)."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jobdeck.targets.aws.alert_events import SFN_LOST, SSM_FAILURES, UNEXPECTED_STOPS


class Alerts(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        function: lambda_.Function,
        cluster: ecs.ICluster,
        missed: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        target = events_targets.LambdaFunction(function, retry_attempts=4)
        machines = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=f"{project}-",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        events.Rule(
            self,
            "Runs",
            description=f"jobdeck {project}: runs lost (timed out, stopped) or slots missed",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": ["FAILED", *SFN_LOST],
                    "stateMachineArn": events.Match.prefix(machines),
                },
            ),
            targets=[target],
        )
        events.Rule(
            self,
            "Workers",
            description=f"jobdeck {project}: worker tasks that stopped unexpectedly",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Task State Change"],
                detail={
                    "clusterArn": [cluster.cluster_arn],
                    "lastStatus": ["STOPPED"],
                    "stopCode": list(UNEXPECTED_STOPS),
                    "group": events.Match.prefix("service:"),
                },
            ),
            targets=[target],
        )
        events.Rule(
            self,
            "Commands",
            description=f"jobdeck {project}: bot commands that failed on the tools host",
            event_pattern=events.EventPattern(
                source=["aws.ssm"],
                detail_type=["EC2 Command Invocation Status-change Notification"],
                detail={
                    "status": list(SSM_FAILURES),
                    "document-name": events.Match.prefix(f"{project}-command-"),
                },
            ),
            targets=[target],
        )
        function.add_event_source(event_sources.SqsEventSource(missed, batch_size=10))
