"""Alerts: the EventBridge rules in the template (CDK assertions), and the bot's function
turning AWS's events into notices for the catalog's notify targets."""

from __future__ import annotations

import json
from typing import Any

from jobdeck.targets.aws.alert_events import logs_url, missed_notice, notice_of
from jobdeck.targets.aws.tools import bot_config
from tests.aws.conftest import Assembly

REGION = "us-east-1"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:variants-"


def _config(variants: Assembly) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(bot_config(variants.loaded.catalog)))
    return loaded


def test_rules_bring_failures_of_every_kind_to_the_bot(variants: Assembly) -> None:
    bot = variants.logical_id("AWS::Lambda::Function", FunctionName="variants-slack-bot")
    patterns = {
        r["Properties"]["EventPattern"]["source"][0]: r["Properties"]["EventPattern"]
        for r in variants.resources("AWS::Events::Rule").values()
        if "EventPattern" in r["Properties"]
        and any(t["Arn"] == {"Fn::GetAtt": [bot, "Arn"]} for t in r["Properties"]["Targets"])
    }
    assert set(patterns) == {"aws.states", "aws.ecs", "aws.ssm"}
    assert patterns["aws.states"]["detail"]["status"] == ["FAILED", "TIMED_OUT", "ABORTED"]
    assert patterns["aws.ecs"]["detail"]["stopCode"] == [
        "EssentialContainerExited",
        "TaskFailedToStart",
        "SpotInterruption",
    ]
    assert patterns["aws.ecs"]["detail"]["group"] == [{"prefix": "service:"}]
    assert patterns["aws.ssm"]["detail"]["document-name"] == [{"prefix": "variants-command-"}]
    # Missed slots: Scheduler's dead letters, read by the bot.
    missed = variants.logical_id("AWS::SQS::Queue", QueueName="variants-missed-slots")
    mapping = variants.one("AWS::Lambda::EventSourceMapping")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [missed, "Arn"]}
    for schedule in variants.resources("AWS::Scheduler::Schedule").values():
        dead = schedule["Properties"]["Target"]["DeadLetterConfig"]["Arn"]
        assert dead == {"Fn::GetAtt": [missed, "Arn"]}
    # Worker task definitions are named so that a stopped task says whose it is.
    families = {
        r["Properties"].get("Family")
        for r in variants.resources("AWS::ECS::TaskDefinition").values()
    }
    assert {"variants-worker-indexer", "variants-worker-order-taker"} <= families


def test_a_timed_out_run_is_lost_with_its_slot_and_logs(variants: Assembly) -> None:
    event: dict[str, Any] = {
        "source": "aws.states",
        "detail": {
            "stateMachineArn": f"{MACHINE}report",
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:variants-report:x",
            "status": "TIMED_OUT",
            "input": json.dumps({"schedule": "report", "scheduled_time": "2026-03-09T12:00:00Z"}),
        },
    }
    notice = notice_of(event, _config(variants), REGION)
    assert notice is not None
    assert (notice["kind"], notice["job"], notice["status"]) == ("schedule", "report", "lost")
    assert notice["scheduled_time"] == "2026-03-09T12:00:00Z"
    assert notice["notify"] == ["slack:#ops"]
    assert notice["logs"] == logs_url(REGION, "/jobdeck/variants/runs")
    assert notice["logs"].endswith(
        "#logsV2:log-groups/log-group/$252Fjobdeck$252Fvariants$252Fruns"
    )
    # A failed run notifies itself (its Notify state): not twice.
    event["detail"]["status"] = "FAILED"
    assert notice_of(event, _config(variants), REGION) is None
    # Another project's machines are not ours.
    event["detail"]["stateMachineArn"] = MACHINE.replace("variants-", "other-") + "report"
    event["detail"]["status"] = "ABORTED"
    assert notice_of(event, _config(variants), REGION) is None


def test_a_failed_launcher_is_a_missed_slot(variants: Assembly) -> None:
    event: dict[str, Any] = {
        "source": "aws.states",
        "detail": {
            "stateMachineArn": f"{MACHINE}launcher",
            "status": "FAILED",
            "error": "States.Runtime",
            "input": json.dumps({"schedule": "quick", "scheduled_time": "2026-03-09T12:01:00Z"}),
        },
    }
    notice = notice_of(event, _config(variants), REGION)
    assert notice is not None
    assert (notice["job"], notice["status"]) == ("quick", "missed")


def test_a_worker_task_that_crashed_is_lost(variants: Assembly) -> None:
    event: dict[str, Any] = {
        "source": "aws.ecs",
        "detail": {
            "lastStatus": "STOPPED",
            "stopCode": "EssentialContainerExited",
            "stoppedReason": "Essential container in task exited",
            "stoppedAt": "2026-03-09T12:02:03Z",
            "group": "service:variants-indexer-Service-ABC",
            "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/variants/0123abcd",
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/"
            "variants-worker-indexer:7",
        },
    }
    notice = notice_of(event, _config(variants), REGION)
    assert notice is not None
    assert (notice["kind"], notice["job"], notice["status"]) == ("worker", "indexer", "lost")
    assert notice["reason"] == "Essential container in task exited"
    assert notice["logs"].endswith("/log-events/indexer$252Frun$252F0123abcd")
    assert notice["notify"] == ["slack:#ops"]
    event["detail"]["stopCode"] = "ServiceSchedulerInitiated"  # a deploy or a scale-in
    assert notice_of(event, _config(variants), REGION) is None


def test_a_failed_bot_command_and_a_missed_slot(variants: Assembly) -> None:
    event: dict[str, Any] = {
        "source": "aws.ssm",
        "time": "2026-03-09T12:03:00Z",
        "detail": {
            "document-name": "variants-command-restart-cache",
            "command-id": "c-1",
            "status": "TimedOut",
        },
    }
    notice = notice_of(event, _config(variants), REGION)
    assert notice is not None
    assert (notice["kind"], notice["job"], notice["status"]) == (
        "command",
        "restart-cache",
        "timed out",
    )
    assert notice["logs"] == logs_url(REGION, "/jobdeck/variants/commands", "c-1")
    body = json.dumps({"schedule": "report", "scheduled_time": "2026-03-09T12:00:00Z"})
    missed = missed_notice(body, "AWS.SFN.ThrottlingException", _config(variants))
    assert (missed["job"], missed["status"]) == ("report", "missed")
    assert missed["error"]["Error"] == "AWS.SFN.ThrottlingException"
