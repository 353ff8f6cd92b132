"""Schedules: EventBridge Scheduler schedules, the launcher, and a run machine per schedule.

Every schedule fires the launcher (see :mod:`.workflow`: suspension, overlap, one run
per slot), which starts the schedule's run machine: ECS on Fargate (:mod:`.workflow`),
or SSM Run Command on the tools host for a ``warm`` pool (:mod:`.workflow_ssm`). A slot
that Scheduler cannot deliver goes to the ``missed-slots`` queue, which the alerts read.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from jobdeck.targets.aws.alert_events import logs_url
from jobdeck.targets.aws.containers import task_definition
from jobdeck.targets.aws.mapping import ScheduleOnAws
from jobdeck.targets.aws.ssm import schedule_document
from jobdeck.targets.aws.workflow import EcsRun, launcher_definition, run_definition
from jobdeck.targets.aws.workflow_ssm import HostRun, host_run_definition

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"


class Schedules(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        schedules: tuple[ScheduleOnAws, ...],
        cluster: ecs.Cluster,
        subnets: list[ec2.ISubnet],
        security_groups: list[ec2.ISecurityGroup],
        assign_public_ip: bool,
        topic: sns.Topic,
        log_group: logs.ILogGroup,
        tools_host: ec2.Instance,
        command_log_group: logs.ILogGroup,
        table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.assign_public_ip = assign_public_ip
        self.run_machines: dict[str, sfn.StateMachine] = {}
        self.task_definitions: dict[str, ecs.FargateTaskDefinition] = {}
        self.documents: dict[str, ssm.CfnDocument] = {}
        self.role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description=f"EventBridge Scheduler of jobdeck project {project}",
        )
        self.launcher = sfn.StateMachine(
            self,
            "Launcher",
            state_machine_name=f"{project}-launcher",
            definition_body=sfn.DefinitionBody.from_string(
                stack.to_json_string(launcher_definition())
            ),
        )
        self.launcher.grant_start_execution(self.role)
        # Slots that Scheduler could not deliver after its retries: missed runs.
        missed = sqs.Queue(
            self,
            "Missed",
            queue_name=f"{project}-missed-slots",
            retention_period=Duration.days(14),
            # At least the bot function's timeout, which reads it (Lambda requires it).
            visibility_timeout=Duration.minutes(16),
            enforce_ssl=True,
        )
        missed.grant_send_messages(self.role)
        self.missed = missed
        # The launcher reads the schedule's suspension before anything else.
        table.grant(self.launcher, "dynamodb:GetItem")
        for item in schedules:
            if item.warm:
                machine = self._host_machine(project, item, tools_host, command_log_group, topic)
            else:
                machine = self._run_machine(
                    project, item, cluster, subnets, security_groups, topic, log_group
                )
            self._launch(project, item, machine, stack)
            target = scheduler.CfnSchedule.TargetProperty(
                arn=self.launcher.state_machine_arn,
                role_arn=self.role.role_arn,
                input=stack.to_json_string(
                    {
                        "schedule": item.name,
                        "scheduled_time": SCHEDULED_TIME,
                        "state_machine": machine.state_machine_arn,
                        "overlap": item.spec.overlap,
                        "table": table.table_name,
                    }
                ),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=3600, maximum_retry_attempts=5
                ),
                # A slot that Scheduler could not deliver (a missed run) is kept here,
                # and the alerts read it.
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(
                    arn=missed.queue_arn
                ),
            )
            scheduler.CfnSchedule(
                self,
                f"{item.name}-schedule",
                name=f"{project}-{item.name}",
                description=item.spec.description or None,
                schedule_expression=item.expression,
                schedule_expression_timezone=item.timezone,
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                state="ENABLED" if item.spec.enabled else "DISABLED",
                target=target,
            )

    def _run_machine(
        self,
        project: str,
        item: ScheduleOnAws,
        cluster: ecs.Cluster,
        subnets: list[ec2.ISubnet],
        security_groups: list[ec2.ISecurityGroup],
        topic: sns.Topic,
        log_group: logs.ILogGroup,
    ) -> sfn.StateMachine:
        assert item.size is not None
        definition = task_definition(
            self,
            item.name,
            spec=item.spec,
            size=item.size,
            stop_after=item.spec.kill_grace,
            log_group=log_group,
            environment={"JOBDECK_SCHEDULE": item.name},
        )
        self.task_definitions[item.name] = definition
        where = EcsRun(
            cluster=cluster.cluster_arn,
            task_definition=definition.task_definition_arn,
            subnets=[subnet.subnet_id for subnet in subnets],
            security_groups=[group.security_group_id for group in security_groups],
            assign_public_ip=self.assign_public_ip,
            topic=topic.topic_arn,
            project=project,
            logs=logs_url(Stack.of(self).region, f"/jobdeck/{project}/runs"),
        )
        stack = Stack.of(self)
        machine = sfn.StateMachine(
            self,
            f"{item.name}-run",
            state_machine_name=f"{project}-{item.name}",
            definition_body=sfn.DefinitionBody.from_string(
                stack.to_json_string(run_definition(item.name, item.spec, where))
            ),
        )
        self.run_machines[item.name] = machine
        # ecs:runTask.sync: run, watch and stop the task, through a managed EventBridge rule.
        machine.add_to_role_policy(
            iam.PolicyStatement(actions=["ecs:RunTask"], resources=[definition.task_definition_arn])
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ecs:StopTask", "ecs:DescribeTasks"],
                resources=["*"],
                conditions={"ArnEquals": {"ecs:cluster": cluster.cluster_arn}},
            )
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(
                        service="events",
                        resource="rule",
                        resource_name="StepFunctionsGetEventsForECSTaskRule",
                    )
                ],
            )
        )
        roles = [definition.task_role, definition.obtain_execution_role()]
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"], resources=[role.role_arn for role in roles]
            )
        )
        topic.grant_publish(machine)
        return machine

    def _launch(
        self, project: str, item: ScheduleOnAws, machine: sfn.StateMachine, stack: Stack
    ) -> None:
        # The launcher checks for running executions, starts this machine, and for
        # cancel_other stops its executions.
        self.launcher.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:ListExecutions", "states:StartExecution"],
                resources=[machine.state_machine_arn],
            )
        )
        if item.spec.overlap == "buffer_one":
            # By name: the machine's own ARN in its role's policy would be a cycle.
            machine.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["states:ListExecutions"],
                    resources=[
                        stack.format_arn(
                            service="states",
                            resource="stateMachine",
                            resource_name=f"{project}-{item.name}",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                )
            )
        if item.spec.overlap == "cancel_other":
            self.launcher.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["states:StopExecution"],
                    resources=[
                        stack.format_arn(
                            service="states",
                            resource="execution",
                            resource_name=f"{project}-{item.name}:*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                )
            )

    def _host_machine(
        self,
        project: str,
        item: ScheduleOnAws,
        tools_host: ec2.Instance,
        command_log_group: logs.ILogGroup,
        topic: sns.Topic,
    ) -> sfn.StateMachine:
        document = ssm.CfnDocument(
            self,
            f"{item.name}-document",
            name=f"{project}-schedule-{item.name}",
            document_type="Command",
            document_format="JSON",
            update_method="NewVersion",
            content=schedule_document(item.name, item.spec),
        )
        self.documents[item.name] = document
        stack = Stack.of(self)
        where = HostRun(
            document=document.ref,
            instance=tools_host.instance_id,
            log_group=command_log_group.log_group_name,
            topic=topic.topic_arn,
            project=project,
            logs=logs_url(stack.region, f"/jobdeck/{project}/commands"),
        )
        machine = sfn.StateMachine(
            self,
            f"{item.name}-run",
            state_machine_name=f"{project}-{item.name}",
            definition_body=sfn.DefinitionBody.from_string(
                stack.to_json_string(host_run_definition(item.name, item.spec, where))
            ),
        )
        self.run_machines[item.name] = machine
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ssm:SendCommand"],
                resources=[
                    stack.format_arn(
                        service="ssm", resource="document", resource_name=document.ref
                    ),
                    stack.format_arn(
                        service="ec2", resource="instance", resource_name=tools_host.instance_id
                    ),
                ],
            )
        )
        # GetCommandInvocation has no resource-level permissions.
        machine.add_to_role_policy(
            iam.PolicyStatement(actions=["ssm:GetCommandInvocation"], resources=["*"])
        )
        topic.grant_publish(machine)
        return machine
