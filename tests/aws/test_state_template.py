"""CDK assertions on the synthesized template: the state table, the keeper, the bot's
access to the table, workers findable for suspension, and TLS-only policies."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match

from tests.aws.conftest import Assembly

DENY_PLAIN_HTTP = {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def _denies_plain_http(policy: dict[str, Any]) -> bool:
    return any(
        all(statement.get(k) == v for k, v in DENY_PLAIN_HTTP.items())
        and statement["Principal"] in ("*", {"AWS": "*"})
        for statement in policy["Statement"]
    )


def test_the_state_table(newsroom: Assembly) -> None:
    table = newsroom.one("AWS::DynamoDB::Table", TableName="newsroom-jobdeck")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    assert table["DeletionProtectionEnabled"] is True
    assert _denies_plain_http(table["ResourcePolicy"]["PolicyDocument"])
    (resource,) = newsroom.resources("AWS::DynamoDB::Table").values()
    assert resource["DeletionPolicy"] == "Retain"  # suspensions outlive the stack


def test_the_keeper_runs_every_minute_and_after_each_deploy(newsroom: Assembly) -> None:
    keeper = newsroom.logical_id("AWS::Lambda::Function", FunctionName="newsroom-jobdeck-keeper")
    function = newsroom.one("AWS::Lambda::Function", FunctionName="newsroom-jobdeck-keeper")
    assert function["Handler"] == "jobdeck.targets.aws.keeper.handler"
    assert function["Environment"]["Variables"]["JOBDECK_CLUSTER"] == "newsroom"
    rules = [
        r["Properties"]
        for r in newsroom.resources("AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": [keeper, "Arn"]} for t in r["Properties"]["Targets"])
    ]
    assert {r.get("ScheduleExpression") for r in rules} == {"rate(1 minute)", None}
    (after,) = [r["EventPattern"] for r in rules if "EventPattern" in r]
    assert after["source"] == ["aws.cloudformation"]
    assert after["detail"]["status-details"]["status"] == [
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
    ]


def test_the_bot_reads_and_writes_the_table(newsroom: Assembly) -> None:
    bot = newsroom.one("AWS::Lambda::Function", FunctionName="newsroom-slack-bot")
    table = newsroom.logical_id("AWS::DynamoDB::Table", TableName="newsroom-jobdeck")
    assert bot["Environment"]["Variables"]["JOBDECK_TABLE"] == {"Ref": table}
    newsroom.cdk.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": [
                                    "dynamodb:GetItem",
                                    "dynamodb:PutItem",
                                    "dynamodb:Query",
                                ],
                                "Resource": Match.array_with([{"Fn::GetAtt": [table, "Arn"]}]),
                            }
                        )
                    ]
                )
            }
        },
    )


def test_the_launcher_reads_suspensions(newsroom: Assembly) -> None:
    table = newsroom.logical_id("AWS::DynamoDB::Table", TableName="newsroom-jobdeck")
    newsroom.cdk.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "dynamodb:GetItem",
                                "Resource": Match.array_with([{"Fn::GetAtt": [table, "Arn"]}]),
                            }
                        )
                    ]
                )
            }
        },
    )


def test_worker_services_carry_their_name(variants: Assembly) -> None:
    tagged = sorted(
        tag["Value"]
        for service in variants.resources("AWS::ECS::Service").values()
        for tag in service["Properties"].get("Tags", [])
        if tag["Key"] == "jobdeck:worker"
    )
    assert tagged == ["indexer", "order-taker"]


def test_every_queue_topic_bucket_and_table_denies_plain_http(
    newsroom: Assembly, variants: Assembly
) -> None:
    for assembly in (newsroom, variants):
        template = assembly.template["Resources"]
        covered: set[str] = set()
        for resource in template.values():
            properties = resource.get("Properties", {})
            if resource["Type"] == "AWS::SQS::QueuePolicy" and _denies_plain_http(
                properties["PolicyDocument"]
            ):
                covered.update(q["Ref"] for q in properties["Queues"])
            if resource["Type"] == "AWS::SNS::TopicPolicy" and _denies_plain_http(
                properties["PolicyDocument"]
            ):
                covered.update(t["Ref"] for t in properties["Topics"])
            if resource["Type"] == "AWS::S3::BucketPolicy" and _denies_plain_http(
                properties["PolicyDocument"]
            ):
                covered.add(properties["Bucket"]["Ref"])
        kinds = ("AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::S3::Bucket")
        stores = {logical for logical, r in template.items() if r["Type"] in kinds}
        assert stores, "nothing to check"
        assert stores <= covered, sorted(stores - covered)
        for table in assembly.resources("AWS::DynamoDB::Table").values():
            assert _denies_plain_http(table["Properties"]["ResourcePolicy"]["PolicyDocument"])
