"""The run machine of a schedule in a ``warm`` pool: the same workflow as a container
schedule, on the tools host through SSM Run Command. Pure ASL, like :mod:`.workflow`.

The launcher starts it as it starts a container schedule's run machine, so suspensions
and the overlap policy apply the same way (``buffer_one`` too: ListExecutions of this
machine). Then: ``ssm:SendCommand`` with ``retry.launch`` retries of the API's refusals,
polling ``GetCommandInvocation`` every few seconds until the command ends; a command
that was never delivered (``Undeliverable``, ``DeliveryTimedOut``) is relaunched as a
launch error, a failed one is run again per ``retry.failure`` with the backoff, a timed
out one never (the document's ``timeoutSeconds`` is the catalog's ``timeout``, and the
machine's own timeout bounds a host that stops answering); on failure a notice to SNS
with the slot, the reason and a link to the output in CloudWatch Logs, then ``Fail``.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobdeck.catalog.model import Schedule
from jobdeck.targets.aws.workflow import Asl, backoffs, buffer_states, ending_states

POLL_SECONDS = 5
# Delivery problems of SSM (the command never started): retried as launch errors.
UNDELIVERED = ("Undeliverable", "DeliveryTimedOut", "Terminated")
RUNNING = ("Pending", "InProgress", "Delayed")
# How long SSM may take to deliver the command to the host before it gives up.
DELIVERY_TIMEOUT = 600


@dataclass(frozen=True)
class HostRun:
    """Where a warm schedule runs (IDs and names, or CDK tokens)."""

    document: str
    instance: str
    log_group: str
    topic: str
    project: str
    logs: str  # the CloudWatch Logs console link of the command output


def host_run_definition(name: str, spec: Schedule, where: HostRun) -> Asl:
    """Input: ``{"schedule", "scheduled_time"}`` (from the launcher)."""
    launch, failure = spec.retry.launch, spec.retry.failure
    timeout = max(1, int(spec.timeout.total_seconds()))
    states: Asl = {
        "Start": {
            "Type": "Pass",
            "Parameters": {
                "schedule": name,
                "scheduled_time.$": "$.scheduled_time",
                "attempt": {"launch": 0, "failure": 0, "wait": 0},
                "waits": backoffs(spec),
            },
            "Next": "Send command",
        },
        "Send command": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:ssm:sendCommand",
            "Parameters": {
                "DocumentName": where.document,
                "InstanceIds": [where.instance],
                "TimeoutSeconds": DELIVERY_TIMEOUT,
                "Comment.$": f"States.Format('jobdeck {name} {{}}', $.scheduled_time)",
                "CloudWatchOutputConfig": {
                    "CloudWatchOutputEnabled": True,
                    "CloudWatchLogGroupName": where.log_group,
                },
            },
            "ResultSelector": {"id.$": "$.Command.CommandId"},
            "ResultPath": "$.command",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Notify"}],
            "Next": "Wait for command",
        },
        "Wait for command": {"Type": "Wait", "Seconds": POLL_SECONDS, "Next": "Read command"},
        "Read command": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:ssm:getCommandInvocation",
            "Parameters": {"CommandId.$": "$.command.id", "InstanceId": where.instance},
            "ResultSelector": {"status.$": "$.Status", "details.$": "$.StatusDetails"},
            "ResultPath": "$.invocation",
            "Retry": [
                {
                    # Right after SendCommand the invocation may not exist yet.
                    "ErrorEquals": ["Ssm.InvocationDoesNotExistException"],
                    "IntervalSeconds": 2,
                    "MaxAttempts": 5,
                    "BackoffRate": 1.5,
                }
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Notify"}],
            "Next": "Ended?",
        },
        "Ended?": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.invocation.status", "StringEquals": "Success", "Next": "Succeeded"},
                *[
                    {
                        "Variable": "$.invocation.status",
                        "StringEquals": s,
                        "Next": "Wait for command",
                    }
                    for s in RUNNING
                ],
                {
                    "Variable": "$.invocation.status",
                    "StringEquals": "TimedOut",
                    "Next": "Timed out",
                },
            ],
            "Default": "Failed run",
        },
        "Timed out": {
            "Type": "Pass",
            "Parameters": {"Error": "States.Timeout", "Cause.$": "$.invocation.details"},
            "ResultPath": "$.error",
            "Next": "Notify",
        },
        "Failed run": {
            "Type": "Pass",
            "Parameters": {
                "Error.$": "States.Format('SSM.{}', $.invocation.status)",
                "Cause.$": "$.invocation.details",
            },
            "ResultPath": "$.error",
            "Next": "Retry?",
        },
        "Retry?": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {
                            "Or": [
                                {"Variable": "$.invocation.details", "StringEquals": d}
                                for d in UNDELIVERED
                            ]
                        },
                        {"Variable": "$.attempt.launch", "NumericLessThan": launch},
                    ],
                    "Next": "Count relaunch",
                },
                {
                    "And": [
                        {
                            "Not": {
                                "Or": [
                                    {"Variable": "$.invocation.details", "StringEquals": d}
                                    for d in UNDELIVERED
                                ]
                            }
                        },
                        {"Variable": "$.attempt.failure", "NumericLessThan": failure},
                    ],
                    "Next": "Count rerun",
                },
            ],
            "Default": "Notify",
        },
        **ending_states(
            name,
            spec,
            where.topic,
            where.project,
            where.logs,
            again="Send command",
            cause=f"schedule {name}: the command failed or timed out on the tools host",
        ),
    }
    if spec.overlap == "buffer_one":
        states["Start"]["Parameters"]["self.$"] = "$$.Execution.Id"
        states["Start"]["Next"] = "Find older runs"
        buffer = buffer_states(name)
        buffer["Older run?"]["Default"] = "Send command"
        states.update(buffer)
    if launch:
        states["Send command"]["Retry"] = [
            {
                # SendCommand refused (throttling, the host not yet registered, ...).
                "ErrorEquals": ["States.TaskFailed"],
                "IntervalSeconds": backoffs(spec)[0],
                "MaxAttempts": launch,
                "BackoffRate": 2.0,
            }
        ]
    return {
        "Comment": f"jobdeck run of schedule {name} on the tools host",
        "StartAt": "Start",
        # A host that stops answering: the run ends as timed out, with a margin for
        # delivery, retries and backoff.
        "TimeoutSeconds": timeout * (1 + failure) + DELIVERY_TIMEOUT + sum(backoffs(spec)),
        "States": states,
    }
