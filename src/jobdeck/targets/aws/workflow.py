"""The run workflow as Amazon States Language. Pure: ARNs and IDs are parameters.

Two state machines carry SPEC section 3 onto AWS:

* the **launcher** (one, parameterised), started by every EventBridge Scheduler schedule
  with the schedule's name and ``<aws.scheduler.scheduled-time>``: it applies ``overlap:
  skip`` (a RUNNING execution of the schedule's run machine means this slot is skipped,
  and the launcher's own execution, which ends in the ``Skipped (overlap)`` state, is
  the record), or ``overlap: cancel_other`` (every RUNNING execution is stopped, which
  makes Step Functions stop its ECS task), and starts the run with an execution name
  made of the scheduled time.
  Step Functions keeps names unique per state machine, so a slot that Scheduler delivers
  twice never runs twice;
* a **run machine** per ECS schedule: for ``overlap: buffer_one`` it first waits while
  an older execution of itself runs, and ends as skipped when two older ones exist (one
  running, one already waiting); then ``ecs:runTask.sync`` on Fargate with the catalog's
  timeout, ``Retry`` of ECS API errors and a relaunch loop for the provisioning failures
  that surface only in the stopped task's reason (they arrive as ``States.TaskFailed``,
  like an application failure, so a ``Choice`` on the cause tells them apart), then on
  failure a notice to SNS (which the Slack bot relays) and ``Fail``.

The definitions are plain dicts; the CDK stack fills in its tokens, and the tests run
the same dicts in moto's interpreter and through ASL validators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobdeck.catalog.model import Schedule

Asl = dict[str, Any]

# The stopped reasons of a task that never started its command: retried as launch errors.
PROVISIONING_FAILURES = (
    "ResourceInitializationError",
    "CannotPullContainerError",
    "TaskFailedToStart",
)
SKIPPED_STATE = "Skipped (overlap)"
SUSPENDED_STATE = "Skipped (suspended)"
BUFFER_FULL_STATE = "Skipped (buffer full)"
# How often a buffered run (overlap: buffer_one) checks whether the older one has ended.
BUFFER_POLL_SECONDS = 10
ALREADY_RAN_STATE = "Slot already ran"
CONTAINER_NAME = "run"


def launcher_definition() -> Asl:
    """Input: ``{"schedule", "scheduled_time", "state_machine", "overlap", "table"}``."""
    return {
        "Comment": "jobdeck launcher: suspension and overlap checks, then one execution per "
        "scheduled slot",
        "StartAt": "Read suspension",
        "States": {
            **suspension_states("Name the run"),
            "Name the run": {
                "Type": "Pass",
                # Execution names may not contain ':'; 2026-03-08T01:00:00Z -> 2026-03-08T010000Z
                "Parameters": {"parts.$": "States.StringSplit($.scheduled_time, ':')"},
                "ResultPath": "$.time",
                "Next": "Check overlap?",
            },
            "Check overlap?": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.overlap", "StringEquals": "skip", "Next": "Find running run"},
                    {
                        "Variable": "$.overlap",
                        "StringEquals": "cancel_other",
                        "Next": "Find runs to cancel",
                    },
                ],
                "Default": "Start run",
            },
            "Find running run": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:sfn:listExecutions",
                "Parameters": {
                    "StateMachineArn.$": "$.state_machine",
                    "StatusFilter": "RUNNING",
                    "MaxResults": 1,
                },
                "ResultSelector": {"count.$": "States.ArrayLength($.Executions)"},
                "ResultPath": "$.running",
                "Next": "Already running?",
            },
            "Already running?": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.running.count", "NumericGreaterThan": 0, "Next": SKIPPED_STATE}
                ],
                "Default": "Start run",
            },
            "Find runs to cancel": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:sfn:listExecutions",
                "Parameters": {"StateMachineArn.$": "$.state_machine", "StatusFilter": "RUNNING"},
                "ResultSelector": {"executions.$": "$.Executions"},
                "ResultPath": "$.running",
                "Next": "Cancel runs",
            },
            "Cancel runs": {
                "Type": "Map",
                "ItemsPath": "$.running.executions",
                "ItemSelector": {"arn.$": "$$.Map.Item.Value.ExecutionArn"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Cancel run",
                    "States": {
                        "Cancel run": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::aws-sdk:sfn:stopExecution",
                            "Parameters": {
                                "ExecutionArn.$": "$.arn",
                                "Error": "jobdeck.Cancelled",
                                "Cause": "overlap: cancel_other; a newer slot starts",
                            },
                            "End": True,
                        }
                    },
                },
                "ResultPath": "$.cancelled",
                "Next": "Start run",
            },
            SKIPPED_STATE: {
                "Type": "Pass",
                "Parameters": {
                    "schedule.$": "$.schedule",
                    "scheduled_time.$": "$.scheduled_time",
                    "status": "skipped",
                    "reason": "overlap",
                },
                "End": True,
            },
            "Start run": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution",
                "Parameters": {
                    "StateMachineArn.$": "$.state_machine",
                    "Name.$": "States.Format('{}{}{}', $.time.parts[0], $.time.parts[1], "
                    "$.time.parts[2])",
                    "Input": {
                        "schedule.$": "$.schedule",
                        "scheduled_time.$": "$.scheduled_time",
                        "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
                    },
                },
                "ResultSelector": {"execution.$": "$.ExecutionArn"},
                "Catch": [
                    {
                        "ErrorEquals": ["StepFunctions.ExecutionAlreadyExistsException"],
                        "ResultPath": "$.error",
                        "Next": ALREADY_RAN_STATE,
                    }
                ],
                "End": True,
            },
            ALREADY_RAN_STATE: {"Type": "Succeed"},
        },
    }


def suspension_states(then: str) -> Asl:
    """The schedule's suspension in the project's table (written by ``jobdeck suspend
    NAME --target aws``): a slot before its ``until`` (or with none) is skipped, and the
    execution, ending in ``Skipped (suspended)``, is the record. Expiry needs nothing
    running: the slot's own time is compared with ``until``."""
    return {
        "Read suspension": {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:getItem",
            "Parameters": {
                "TableName.$": "$.table",
                "Key": {
                    "pk": {"S": "suspension"},
                    "sk": {"S.$": "States.Format('schedule#{}', $.schedule)"},
                },
                "ConsistentRead": True,
            },
            "ResultPath": "$.suspension",
            "Next": "Suspended?",
        },
        "Suspended?": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.suspension.Item", "IsPresent": True},
                        {"Variable": "$.suspension.Item.until.S", "IsPresent": False},
                    ],
                    "Next": SUSPENDED_STATE,
                },
                {
                    "And": [
                        {"Variable": "$.suspension.Item.until.S", "IsPresent": True},
                        {
                            "Variable": "$.suspension.Item.until.S",
                            "TimestampGreaterThanPath": "$.scheduled_time",
                        },
                    ],
                    "Next": SUSPENDED_STATE,
                },
            ],
            "Default": then,
        },
        SUSPENDED_STATE: {
            "Type": "Pass",
            "Parameters": {
                "schedule.$": "$.schedule",
                "scheduled_time.$": "$.scheduled_time",
                "status": "skipped",
                "reason": "suspended",
                "suspended_by.$": "$.suspension.Item.created_by.S",
                "why.$": "$.suspension.Item.reason.S",
            },
            "End": True,
        },
    }


@dataclass(frozen=True)
class EcsRun:
    """Where a run machine starts its task (ARNs and IDs, or CDK tokens)."""

    cluster: str
    task_definition: str
    subnets: list[str]
    security_groups: list[str]
    topic: str  # SNS topic of failure notices
    project: str = ""
    logs: str = ""  # the CloudWatch Logs console link of the runs' log group
    assign_public_ip: bool = True


def backoffs(spec: Schedule) -> list[int]:
    """Seconds to wait before retry 1, 2, ...: ``retry.backoff``, doubling."""
    first = max(1, int(spec.retry.backoff.total_seconds()))
    count = max(spec.retry.launch, spec.retry.failure, 1)
    return [first * 2**index for index in range(count)]


def run_definition(name: str, spec: Schedule, where: EcsRun) -> Asl:
    """Input: ``{"schedule", "scheduled_time"}`` (from the launcher)."""
    launch, failure = spec.retry.launch, spec.retry.failure
    first_backoff = backoffs(spec)[0]
    is_provisioning: Asl = {
        "Or": [
            {"Variable": "$.error.Cause", "StringMatches": f"*{reason}*"}
            for reason in PROVISIONING_FAILURES
        ]
    }
    retry_choices: list[Asl] = []
    if launch:
        retry_choices.append(
            {
                "And": [
                    {"Variable": "$.error.Cause", "IsPresent": True},
                    {"Variable": "$.error.Cause", "IsString": True},
                    is_provisioning,
                    {"Variable": "$.attempt.launch", "NumericLessThan": launch},
                ],
                "Next": "Count relaunch",
            }
        )
    if failure:
        retry_choices.append(
            {
                "Variable": "$.attempt.failure",
                "NumericLessThan": failure,
                "Next": "Count rerun",
            }
        )
    states: Asl = {
        "Start": {
            "Type": "Pass",
            "Parameters": {
                "schedule": name,
                "scheduled_time.$": "$.scheduled_time",
                "attempt": {"launch": 0, "failure": 0, "wait": 0},
                "waits": backoffs(spec),
                "self.$": "$$.Execution.Id",
            },
            "Next": "Find older runs" if spec.overlap == "buffer_one" else "Run task",
        },
        "Run task": {
            "Type": "Task",
            "Resource": "arn:aws:states:::ecs:runTask.sync",
            "TimeoutSeconds": max(1, int(spec.timeout.total_seconds())),
            "Parameters": {
                "Cluster": where.cluster,
                "TaskDefinition": where.task_definition,
                "LaunchType": "FARGATE",
                "PlatformVersion": "LATEST",
                "NetworkConfiguration": {
                    "AwsvpcConfiguration": {
                        "Subnets": where.subnets,
                        "SecurityGroups": where.security_groups,
                        "AssignPublicIp": "ENABLED" if where.assign_public_ip else "DISABLED",
                    }
                },
                "Overrides": {
                    "ContainerOverrides": [
                        {
                            "Name": CONTAINER_NAME,
                            "Environment": [
                                {"Name": "JOBDECK_SCHEDULE", "Value": name},
                                {"Name": "JOBDECK_SCHEDULED_TIME", "Value.$": "$.scheduled_time"},
                            ],
                        }
                    ]
                },
                "PropagateTags": "TASK_DEFINITION",
            },
            "ResultSelector": {"TaskArn.$": "$.TaskArn"},
            "ResultPath": "$.task",
            "Catch": [
                # A timeout is never retried (SPEC section 3).
                {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "Notify"},
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Retry?"},
            ],
            "Next": "Succeeded",
        },
        "Retry?": {"Type": "Choice", "Choices": retry_choices, "Default": "Notify"}
        if retry_choices
        else {"Type": "Pass", "Next": "Notify"},
        **ending_states(
            name,
            spec,
            where.topic,
            where.project,
            where.logs,
            again="Run task",
            cause=f"schedule {name}: the run failed or timed out; see this execution's events",
        ),
    }
    if spec.overlap == "buffer_one":
        states.update(buffer_states(name))
    if launch:
        states["Run task"]["Retry"] = [
            {
                # RunTask itself refused (capacity, throttling, API errors).
                "ErrorEquals": ["ECS.AmazonECSException"],
                "IntervalSeconds": first_backoff,
                "MaxAttempts": launch,
                "BackoffRate": 2.0,
            }
        ]
    else:
        del states["Count relaunch"]
    if not failure:
        del states["Count rerun"]
    if not (launch or failure):
        del states["Back off"]
    return {
        "Comment": f"jobdeck run of schedule {name}",
        "StartAt": "Start",
        "States": states,
    }


def ending_states(
    name: str,
    spec: Schedule,
    topic: str,
    project: str,
    logs: str,
    *,
    again: str,
    cause: str,
) -> Asl:
    """How a schedule's run ends, the same on ECS and on the tools host: count a relaunch
    or a rerun and back off before ``again``, or notify the failure, or succeed."""
    return {
        "Count relaunch": {
            "Type": "Pass",
            "Parameters": {
                "launch.$": "States.MathAdd($.attempt.launch, 1)",
                "failure.$": "$.attempt.failure",
                "wait.$": "States.ArrayGetItem($.waits, $.attempt.launch)",
            },
            "ResultPath": "$.attempt",
            "Next": "Back off",
        },
        "Count rerun": {
            "Type": "Pass",
            "Parameters": {
                "launch.$": "$.attempt.launch",
                "failure.$": "States.MathAdd($.attempt.failure, 1)",
                "wait.$": "States.ArrayGetItem($.waits, $.attempt.failure)",
            },
            "ResultPath": "$.attempt",
            "Next": "Back off",
        },
        "Back off": {"Type": "Wait", "SecondsPath": "$.attempt.wait", "Next": again},
        "Notify": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sns:publish",
            "Parameters": {
                "TopicArn": topic,
                "Subject": f"jobdeck: schedule {name} failed",
                "Message": {
                    "project": project,
                    "kind": "schedule",
                    "job": name,
                    "pool": spec.pool,
                    "scheduled_time.$": "$.scheduled_time",
                    "execution.$": "$$.Execution.Id",
                    "error.$": "$.error",
                    "logs": logs,
                    "notify": list(spec.notify),
                },
            },
            "ResultPath": None,
            # The run has failed either way; a lost notice must not hide that.
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "Failed"}],
            "Next": "Failed",
        },
        "Failed": {"Type": "Fail", "Error": "jobdeck.RunFailed", "Cause": cause},
        "Succeeded": {"Type": "Succeed"},
    }


def buffer_states(name: str) -> Asl:
    """``overlap: buffer_one``: wait while an older run is RUNNING; skip when one is
    already waiting too (ListExecutions lists the newest first)."""
    return {
        "Find older runs": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:sfn:listExecutions",
            "Parameters": {
                "StateMachineArn.$": "$$.StateMachine.Id",
                "StatusFilter": "RUNNING",
                "MaxResults": 3,
            },
            "ResultSelector": {"arns.$": "$.Executions[*].ExecutionArn"},
            "ResultPath": "$.queue",
            "Next": "Count older runs",
        },
        "Count older runs": {
            "Type": "Pass",
            "Parameters": {
                "count.$": "States.ArrayLength($.queue.arns)",
                # Its own execution is RUNNING too, so the list is never empty.
                "newest.$": "States.ArrayGetItem($.queue.arns, 0)",
            },
            "ResultPath": "$.queue",
            "Next": "Older run?",
        },
        "Older run?": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.queue.count", "NumericGreaterThanEquals": 3},
                        {"Variable": "$.queue.newest", "StringEqualsPath": "$.self"},
                    ],
                    "Next": BUFFER_FULL_STATE,
                },
                {
                    "Variable": "$.queue.count",
                    "NumericGreaterThanEquals": 2,
                    "Next": "Wait for older run",
                },
            ],
            "Default": "Run task",
        },
        "Wait for older run": {
            "Type": "Wait",
            "Seconds": BUFFER_POLL_SECONDS,
            "Next": "Find older runs",
        },
        BUFFER_FULL_STATE: {
            "Type": "Pass",
            "Parameters": {
                "schedule": name,
                "scheduled_time.$": "$.scheduled_time",
                "status": "skipped",
                "reason": "overlap",
            },
            "End": True,
        },
    }
