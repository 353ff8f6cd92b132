"""CDK assertions on the synthesized templates: every catalog field's AWS mapping."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from tests.aws.asl import definitions, flatten, placeholders
from tests.aws.conftest import Assembly

IMAGE = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/newsroom-batch:1.2"


def _machine(assembly: Assembly, name: str) -> dict[str, Any]:
    logical = assembly.logical_id("AWS::StepFunctions::StateMachine", StateMachineName=name)
    return definitions(assembly.template, placeholders(assembly.template))[logical]


def _schedule_input(assembly: Assembly, name: str) -> dict[str, Any]:
    schedule = assembly.one("AWS::Scheduler::Schedule", Name=name)
    resolve = placeholders(assembly.template)
    loaded: dict[str, Any] = json.loads(flatten(schedule["Target"]["Input"], resolve))
    return loaded


# --- schedules ----------------------------------------------------------------------------


def test_one_scheduler_schedule_per_schedule_in_its_zone(newsroom: Assembly) -> None:
    newsroom.cdk.resource_count_is(
        "AWS::Scheduler::Schedule", len(newsroom.loaded.catalog.schedules)
    )
    launcher = newsroom.logical_id(
        "AWS::StepFunctions::StateMachine", StateMachineName="newsroom-launcher"
    )
    newsroom.cdk.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "Name": "newsroom-ranking-aggregate",
            "ScheduleExpression": "cron(* * * * ? *)",
            "ScheduleExpressionTimezone": "Asia/Tokyo",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "Target": Match.object_like({"Arn": {"Ref": launcher}}),
        },
    )
    newsroom.cdk.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {"Name": "newsroom-sitemap-rebuild", "ScheduleExpression": "cron(30 3 * * ? *)"},
    )
    newsroom.cdk.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {"Name": "newsroom-report-export", "ScheduleExpression": "cron(0 4 ? * MON *)"},
    )
    # A rate counts elapsed time: no zone.
    newsroom.cdk.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "Name": "newsroom-stale-cache-sweep",
            "ScheduleExpression": "rate(1 minute)",
            "ScheduleExpressionTimezone": Match.absent(),
        },
    )


def test_the_schedule_passes_its_scheduled_time(newsroom: Assembly) -> None:
    given = _schedule_input(newsroom, "newsroom-ranking-aggregate")
    run = newsroom.logical_id(
        "AWS::StepFunctions::StateMachine", StateMachineName="newsroom-ranking-aggregate"
    )
    table = newsroom.logical_id("AWS::DynamoDB::Table", TableName="newsroom-jobdeck")
    assert given == {
        "schedule": "ranking-aggregate",
        "scheduled_time": "<aws.scheduler.scheduled-time>",
        "state_machine": placeholders(newsroom.template)(run, None),
        "overlap": "skip",
        "table": placeholders(newsroom.template)(table, None),
    }


def test_disabled_and_allow_overlap(variants: Assembly) -> None:
    variants.cdk.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {"Name": "variants-paused", "State": "DISABLED", "ScheduleExpression": "rate(2 hours)"},
    )
    assert _schedule_input(variants, "variants-report")["overlap"] == "allow"
    variants.cdk.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "Name": "variants-report",
            "ScheduleExpression": "cron(0 7 ? * MON-FRI *)",
            "ScheduleExpressionTimezone": "America/New_York",
        },
    )


def test_a_warm_pool_schedule_runs_the_same_workflow_on_the_tools_host(
    variants: Assembly,
) -> None:
    schedule = variants.one("AWS::Scheduler::Schedule", Name="variants-host-cleanup")
    launcher = variants.logical_id(
        "AWS::StepFunctions::StateMachine", StateMachineName="variants-launcher"
    )
    assert schedule["Target"]["Arn"] == {"Ref": launcher}
    assert "Arn" in schedule["Target"]["DeadLetterConfig"]  # missed slots are kept
    given = _schedule_input(variants, "variants-host-cleanup")
    assert given["overlap"] == "skip"
    states = _machine(variants, "variants-host-cleanup")["States"]
    send = states["Send command"]
    document = variants.logical_id("AWS::SSM::Document", Name="variants-schedule-host-cleanup")
    instance = next(iter(variants.resources("AWS::EC2::Instance")))
    resolve = placeholders(variants.template)
    assert send["Resource"] == "arn:aws:states:::aws-sdk:ssm:sendCommand"
    assert send["Parameters"]["DocumentName"] == resolve(document, None)
    assert send["Parameters"]["InstanceIds"] == [resolve(instance, None)]
    assert send["Retry"][0]["MaxAttempts"] == 3  # retry.launch's default
    assert states["Read command"]["Resource"].endswith("ssm:getCommandInvocation")
    assert states["Timed out"]["Next"] == "Notify"  # a timeout is never retried
    notice = states["Notify"]["Parameters"]["Message"]
    assert notice["notify"] == ["slack:#ops"]
    assert notice["logs"].startswith("https://us-east-1.console.aws.amazon.com/cloudwatch/")
    content = variants.one("AWS::SSM::Document", Name="variants-schedule-host-cleanup")["Content"]
    step = content["mainSteps"][0]
    assert step["action"] == "aws:runShellScript"
    assert step["inputs"] == {
        "runCommand": [
            "set -eu",
            "export LEVEL=2",
            "exec /usr/local/bin/cleanup --older-than 7d",
        ],
        "timeoutSeconds": "600",
    }
    # No task definition for it.
    assert not any(
        "host-cleanup" in logical for logical in variants.resources("AWS::ECS::TaskDefinition")
    )


# --- the run workflow ---------------------------------------------------------------------


def test_launcher_checks_overlap_and_names_runs_by_slot(newsroom: Assembly) -> None:
    states = _machine(newsroom, "newsroom-launcher")["States"]
    assert states["Find running run"]["Resource"] == "arn:aws:states:::aws-sdk:sfn:listExecutions"
    assert states["Find running run"]["Parameters"]["StatusFilter"] == "RUNNING"
    assert states["Already running?"]["Choices"][0]["Next"] == "Skipped (overlap)"
    assert states["Skipped (overlap)"]["Parameters"]["reason"] == "overlap"
    start = states["Start run"]
    assert start["Resource"] == "arn:aws:states:::states:startExecution"
    assert "$.time.parts" in start["Parameters"]["Name.$"]
    assert start["Catch"][0]["ErrorEquals"] == ["StepFunctions.ExecutionAlreadyExistsException"]
    cancel = states["Cancel runs"]
    assert cancel["Type"] == "Map"
    stop = cancel["ItemProcessor"]["States"]["Cancel run"]
    assert stop["Resource"] == "arn:aws:states:::aws-sdk:sfn:stopExecution"
    assert cancel["Next"] == "Start run"


def test_buffer_one_waits_in_the_run_machine(variants: Assembly) -> None:
    states = _machine(variants, "variants-queued")["States"]
    assert states["Start"]["Next"] == "Find older runs"
    find = states["Find older runs"]
    assert find["Resource"] == "arn:aws:states:::aws-sdk:sfn:listExecutions"
    assert find["Parameters"]["StateMachineArn.$"] == "$$.StateMachine.Id"
    full, waiting = states["Older run?"]["Choices"]
    assert full["Next"] == "Skipped (buffer full)"
    assert waiting == {
        "Variable": "$.queue.count",
        "NumericGreaterThanEquals": 2,
        "Next": "Wait for older run",
    }
    assert states["Wait for older run"]["Next"] == "Find older runs"
    assert "Find older runs" not in _machine(variants, "variants-quick")["States"]
    policies = json.dumps(variants.resources("AWS::IAM::Policy"))
    assert ":stateMachine:variants-queued" in policies


def test_cancel_other_may_stop_the_schedules_runs(variants: Assembly) -> None:
    assert _schedule_input(variants, "variants-replace")["overlap"] == "cancel_other"
    policies = json.dumps(variants.resources("AWS::IAM::Policy"))
    assert '"states:StopExecution"' in policies
    assert ":execution:variants-replace:*" in policies
    assert ":execution:variants-report:*" not in policies


def test_run_machine_runs_fargate_with_timeout_retry_and_notice(newsroom: Assembly) -> None:
    definition = _machine(newsroom, "newsroom-ranking-aggregate")
    states = definition["States"]
    resolve = placeholders(newsroom.template)
    run = states["Run task"]
    assert run["Resource"] == "arn:aws:states:::ecs:runTask.sync"
    assert run["TimeoutSeconds"] == 15 * 60
    task_definition = next(
        logical
        for logical, r in newsroom.resources("AWS::ECS::TaskDefinition").items()
        if r["Properties"]["ContainerDefinitions"][0]["EntryPoint"][-1] == "newsroom.batch.ranking"
    )
    assert run["Parameters"]["TaskDefinition"] == resolve(task_definition, None)
    assert run["Parameters"]["LaunchType"] == "FARGATE"
    assert run["Parameters"]["Cluster"] == resolve(
        next(iter(newsroom.resources("AWS::ECS::Cluster"))), "Arn"
    )
    assert run["Retry"] == [
        {
            "ErrorEquals": ["ECS.AmazonECSException"],
            "IntervalSeconds": 10,
            "MaxAttempts": 3,
            "BackoffRate": 2.0,
        }
    ]
    assert [c["ErrorEquals"] for c in run["Catch"]] == [["States.Timeout"], ["States.ALL"]]
    assert run["Catch"][0]["Next"] == "Notify"
    relaunch = states["Retry?"]["Choices"][0]
    matched = {rule["StringMatches"] for rule in relaunch["And"][2]["Or"]}
    assert matched == {
        "*ResourceInitializationError*",
        "*CannotPullContainerError*",
        "*TaskFailedToStart*",
    }
    assert relaunch["And"][3] == {"Variable": "$.attempt.launch", "NumericLessThan": 3}
    assert states["Start"]["Parameters"]["waits"] == [10, 20, 40]
    notify = states["Notify"]
    topic = next(iter(newsroom.resources("AWS::SNS::Topic")))
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    assert notify["Parameters"]["TopicArn"] == resolve(topic, None)
    assert notify["Parameters"]["Message"]["notify"] == ["slack:#batch-alerts"]
    assert notify["Next"] == "Failed"
    assert states["Failed"]["Type"] == "Fail"


def test_application_failures_retry_only_when_asked(variants: Assembly) -> None:
    states = _machine(variants, "variants-report")["States"]
    assert states["Retry?"]["Choices"][1] == {
        "Variable": "$.attempt.failure",
        "NumericLessThan": 1,
        "Next": "Count rerun",
    }
    assert states["Start"]["Parameters"]["waits"] == [30, 60]
    paused = _machine(variants, "variants-paused")["States"]
    assert "Retry" not in paused["Run task"]
    assert paused["Retry?"] == {"Type": "Pass", "Next": "Notify"}


def test_task_definitions_from_image_argv_env_and_size(newsroom: Assembly) -> None:
    newsroom.cdk.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "Cpu": "256",
            "Memory": "512",
            "RequiresCompatibilities": ["FARGATE"],
            "NetworkMode": "awsvpc",
            "ContainerDefinitions": [
                Match.object_like(
                    {
                        "Name": "run",
                        "Image": IMAGE,
                        "EntryPoint": ["python3", "-m", "newsroom.batch.ranking"],
                        "Environment": Match.array_with(
                            [
                                {"Name": "AWS_REGION", "Value": {"Ref": "AWS::Region"}},
                                {"Name": "RANKING_WINDOW", "Value": "24h"},
                            ]
                        ),
                        "StopTimeout": 10,
                        "LogConfiguration": Match.object_like({"LogDriver": "awslogs"}),
                    }
                )
            ],
        },
    )
    newsroom.cdk.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "ContainerDefinitions": [
                Match.object_like(
                    {
                        "EntryPoint": [
                            "/bin/sh",
                            "-c",
                            "echo rebuilding sitemap && sleep 1 && echo done",
                        ]
                    }
                )
            ]
        },
    )


def test_sizes_round_up_to_fargate(variants: Assembly) -> None:
    variants.cdk.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "Cpu": "1024",
            "Memory": "3072",
            "ContainerDefinitions": [
                Match.object_like(
                    {
                        "EntryPoint": ["python", "-m", "report", "--all"],
                        "WorkingDirectory": "/srv/app",
                    }
                )
            ],
        },
    )


# --- workers ------------------------------------------------------------------------------


def test_worker_service_replicas_spot_and_queue_url(newsroom: Assembly) -> None:
    queue = newsroom.logical_id("AWS::SQS::Queue", QueueName="feed-index")
    newsroom.cdk.has_resource_properties(
        "AWS::ECS::Service",
        {
            "DesiredCount": 2,
            "CapacityProviderStrategy": [
                {"CapacityProvider": "FARGATE", "Base": 1, "Weight": 0},
                {"CapacityProvider": "FARGATE_SPOT", "Weight": 1},
            ],
            "DeploymentConfiguration": Match.object_like(
                {"MaximumPercent": 200, "MinimumHealthyPercent": 100}
            ),
        },
    )
    newsroom.cdk.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "ContainerDefinitions": [
                Match.object_like(
                    {
                        "Environment": Match.array_with(
                            [{"Name": "JOBDECK_QUEUE_URL", "Value": {"Ref": queue}}]
                        ),
                        "StopTimeout": 30,
                    }
                )
            ]
        },
    )


def test_singleton_worker_never_overlaps_in_a_deployment(variants: Assembly) -> None:
    variants.cdk.has_resource_properties(
        "AWS::ECS::Service",
        {
            "DesiredCount": 1,
            "CapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": 1}],
            "DeploymentConfiguration": Match.object_like(
                {"MaximumPercent": 100, "MinimumHealthyPercent": 0}
            ),
        },
    )
    variants.cdk.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "ContainerDefinitions": [
                Match.object_like({"EntryPoint": ["python", "-m", "orders"], "StopTimeout": 120})
            ]
        },
    )


def test_autoscale_tracks_backlog_per_task(variants: Assembly) -> None:
    variants.cdk.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"MinCapacity": 0, "MaxCapacity": 6, "ScalableDimension": "ecs:service:DesiredCount"},
    )
    queue = variants.logical_id("AWS::SQS::Queue", QueueName="plain")
    policy = variants.one("AWS::ApplicationAutoScaling::ScalingPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling"
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["TargetValue"] == 50
    assert (config["ScaleInCooldown"], config["ScaleOutCooldown"]) == (120, 120)
    metrics = {m["Id"]: m for m in config["CustomizedMetricSpecification"]["Metrics"]}
    visible = metrics["visible"]["MetricStat"]["Metric"]
    assert visible["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert visible["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
    ]
    running = metrics["running"]["MetricStat"]["Metric"]
    assert running["MetricName"] == "RunningTaskCount"
    assert metrics["backlog_per_task"]["Expression"] == "visible / IF(running < 1, 1, running)"
    assert [m["Id"] for m in metrics.values() if m["ReturnData"]] == ["backlog_per_task"]
    variants.cdk.has_resource_properties(
        "AWS::ECS::Service",
        {"DesiredCount": 0, "DeploymentConfiguration": Match.object_like({"MaximumPercent": 200})},
    )
    variants.cdk.has_resource_properties(
        "AWS::ECS::ClusterCapacityProviderAssociations",
        {"CapacityProviders": ["FARGATE", "FARGATE_SPOT"]},
    )
    variants.cdk.has_resource_properties(
        "AWS::ECS::Cluster",
        {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
    )


# --- queues -------------------------------------------------------------------------------


def test_queues_with_dead_letter_queues(newsroom: Assembly) -> None:
    dlq = newsroom.logical_id("AWS::SQS::Queue", QueueName="feed-index-dlq")
    newsroom.cdk.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": "feed-index",
            "VisibilityTimeout": 60,
            "MessageRetentionPeriod": 4 * 86400,
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
                "maxReceiveCount": 5,
            },
        },
    )
    newsroom.cdk.has_resource_properties(
        "AWS::SQS::Queue",
        {"QueueName": "feed-index-dlq", "MessageRetentionPeriod": 14 * 86400},
    )


def test_every_task_may_use_the_projects_queues_by_their_catalog_names(
    newsroom: Assembly,
) -> None:
    # The example's producer and indexer find their queues by name (FEED_QUEUE,
    # SITEMAP_QUEUE), which on AWS are the catalog's names too.
    names = {r["Properties"]["QueueName"] for r in newsroom.resources("AWS::SQS::Queue").values()}
    assert names == {"feed-index", "feed-index-dlq", "sitemap-updates", "newsroom-missed-slots"}
    updates = newsroom.logical_id("AWS::SQS::Queue", QueueName="sitemap-updates")
    producer_role = next(
        r["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
        for r in newsroom.resources("AWS::ECS::TaskDefinition").values()
        if "newsroom.workers.produce_articles"
        in r["Properties"]["ContainerDefinitions"][0]["EntryPoint"]
    )
    statements = [
        statement
        for policy in newsroom.resources("AWS::IAM::Policy").values()
        if {"Ref": producer_role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    sends = [s["Resource"] for s in statements if "sqs:SendMessage" in s["Action"]]
    assert {"Fn::GetAtt": [updates, "Arn"]} in sends


def test_fifo_queues(variants: Assembly) -> None:
    dlq = variants.logical_id("AWS::SQS::Queue", QueueName="orders-dlq.fifo")
    variants.cdk.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": "orders.fifo",
            "FifoQueue": True,
            "ContentBasedDeduplication": True,
            "DelaySeconds": 5,
            "VisibilityTimeout": 120,
            "MessageRetentionPeriod": 86400,
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
                "maxReceiveCount": 3,
            },
        },
    )
    variants.cdk.has_resource_properties(
        "AWS::SQS::Queue", {"QueueName": "orders-dlq.fifo", "FifoQueue": True}
    )
    variants.cdk.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": "plain",
            "RedrivePolicy": Match.absent(),
            "FifoQueue": Match.absent(),
        },
    )
