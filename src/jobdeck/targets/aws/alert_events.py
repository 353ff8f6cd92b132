"""AWS events as failure notices (the shape :mod:`.notices` delivers). Pure.

The stack's EventBridge rules send the bot's function:

* **Step Functions** executions that end ``TIMED_OUT`` or ``ABORTED`` (a run machine
  stopped by hand or over its own deadline: the run is lost), and failed launcher
  executions (the slot never started: missed). A run that fails is notified by its own
  ``Notify`` state, with the error, so a ``FAILED`` run machine is not matched twice;
* **ECS** task state changes of worker services: a task that stopped because its
  essential container exited, failed to start, or was reclaimed by Fargate Spot;
* **SSM** command invocations of the bot's commands that ended ``Failed``,
  ``TimedOut`` or ``Cancelled`` (the bot shows the result too, but only while it waits);
* and the **missed-slots** queue: slots that EventBridge Scheduler could not deliver.

Each becomes a notice with the job's name, the slot (or the time of the event), the
reason and a CloudWatch Logs console link, for the job's ``notify`` targets.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

# ECS stop codes of a worker task that nobody asked to stop.
UNEXPECTED_STOPS = ("EssentialContainerExited", "TaskFailedToStart", "SpotInterruption")
SSM_FAILURES = ("Failed", "TimedOut", "Cancelled")
SFN_LOST = ("TIMED_OUT", "ABORTED")


def logs_url(region: str, group: str, stream: str | None = None) -> str:
    """The CloudWatch Logs console page of a log group (or one stream of it)."""

    def encode(text: str) -> str:
        return quote(quote(text, safe=""), safe="").replace("%", "$")

    url = (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{encode(group)}"
    )
    if stream:
        url += f"/log-events/{encode(stream)}"
    return url


def notice_of(event: dict[str, Any], config: dict[str, Any], region: str) -> dict[str, Any] | None:
    """The notice for one EventBridge event, or None when it is not about this project
    or not a failure."""
    source = event.get("source")
    detail = event.get("detail") or {}
    if source == "aws.states":
        return _execution(detail, config, region)
    if source == "aws.ecs":
        return _task(detail, config, region)
    if source == "aws.ssm":
        return _command(detail, config, region, event.get("time"))
    return None


def missed_notice(body: str, error: str | None, config: dict[str, Any]) -> dict[str, Any]:
    """A slot from the missed-slots queue (the launcher's input Scheduler could not
    deliver, with Scheduler's ``ERROR_CODE`` attribute)."""
    given = json.loads(body)
    name = str(given.get("schedule"))
    return _notice(
        config,
        "schedule",
        name,
        given.get("scheduled_time"),
        "missed",
        {"Error": error or "Scheduler.DeliveryFailed", "Cause": "the slot was not started"},
        None,
    )


def _execution(
    detail: dict[str, Any], config: dict[str, Any], region: str
) -> dict[str, Any] | None:
    project = config["project"]
    machine = str(detail.get("stateMachineArn", "")).rsplit(":", 1)[-1]
    if not machine.startswith(f"{project}-"):
        return None
    name = machine.removeprefix(f"{project}-")
    status = detail.get("status")
    try:
        given = json.loads(detail.get("input") or "{}")
    except ValueError:
        given = {}
    if name == "launcher":
        if status not in ("FAILED", *SFN_LOST):
            return None
        name, how = str(given.get("schedule")), "missed"
    elif status in SFN_LOST:
        how = "lost"
    else:
        return None
    error = {"Error": detail.get("error") or f"States.{status}", "Cause": detail.get("cause")}
    notice = _notice(
        config, "schedule", name, given.get("scheduled_time"), how, error, None, region
    )
    notice["execution"] = detail.get("executionArn")
    return notice


def _task(detail: dict[str, Any], config: dict[str, Any], region: str) -> dict[str, Any] | None:
    project = config["project"]
    if detail.get("lastStatus") != "STOPPED" or detail.get("stopCode") not in UNEXPECTED_STOPS:
        return None
    if not str(detail.get("group", "")).startswith("service:"):
        return None
    family = str(detail.get("taskDefinitionArn", "")).rsplit("/", 1)[-1].split(":")[0]
    prefix = f"{project}-worker-"
    if not family.startswith(prefix):
        return None
    name = family.removeprefix(prefix)
    task_id = str(detail.get("taskArn", "")).rsplit("/", 1)[-1]
    error = {"Error": f"ECS.{detail.get('stopCode')}", "Cause": detail.get("stoppedReason")}
    stream = f"{name}/run/{task_id}"
    return _notice(
        config,
        "worker",
        name,
        detail.get("stoppedAt"),
        "lost",
        error,
        logs_url(region, f"/jobdeck/{project}/runs", stream),
    )


def _command(
    detail: dict[str, Any], config: dict[str, Any], region: str, at: str | None
) -> dict[str, Any] | None:
    project = config["project"]
    document = str(detail.get("document-name", ""))
    prefix = f"{project}-command-"
    if not document.startswith(prefix) or detail.get("status") not in SSM_FAILURES:
        return None
    name = document.removeprefix(prefix)
    error = {"Error": f"SSM.{detail.get('status')}", "Cause": detail.get("status")}
    notice = _notice(
        config,
        "command",
        name,
        detail.get("requested-date-time") or at,
        "failed" if detail.get("status") == "Failed" else "timed out",
        error,
        logs_url(region, f"/jobdeck/{project}/commands", str(detail.get("command-id", ""))),
    )
    notice["trigger"] = "slack"
    return notice


def _notice(
    config: dict[str, Any],
    kind: str,
    name: str,
    slot: Any,
    status: str,
    error: dict[str, Any],
    logs: str | None,
    region: str | None = None,
) -> dict[str, Any]:
    project = config["project"]
    if logs is None and region is not None:
        logs = logs_url(region, f"/jobdeck/{project}/runs")
    return {
        "project": project,
        "kind": kind,
        "job": name,
        "scheduled_time": slot,
        "status": status,
        "reason": error.get("Cause") or None,
        "error": error,
        "logs": logs,
        "notify": list((config.get("notify") or {}).get(kind, {}).get(name, [])),
    }
