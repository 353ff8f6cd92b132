"""Pure pieces: secret references in env, and the template comparison of diff."""

from __future__ import annotations

import pytest

from jobdeck.catalog.env_refs import EnvRef, parse_ref
from jobdeck.targets.aws.deploy import compare

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", None),
        ("ssm:/prod/db/password", EnvRef("ssm", "/prod/db/password")),
        (f"secretsmanager:{ARN}", EnvRef("secretsmanager", ARN)),
        (f"secretsmanager:{ARN}:username", EnvRef("secretsmanager", ARN, "username")),
    ],
)
def test_references_are_read(value: str, expected: EnvRef | None) -> None:
    assert parse_ref(value) == expected


@pytest.mark.parametrize(
    "value", ["ssm:prod/x", "ssm:/", "secretsmanager:prod/db", f"secretsmanager:{ARN}:a:b"]
)
def test_malformed_references_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="is not a"):
        parse_ref(value)


def test_complete_and_partial_arns() -> None:
    assert EnvRef("secretsmanager", ARN).complete_arn
    assert not EnvRef("secretsmanager", ARN.removesuffix("-AbCdEf")).complete_arn


def test_compare_lists_what_changes() -> None:
    old = {
        "Resources": {
            "Same": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "a"}},
            "Changed": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": "x"}},
            "Gone": {"Type": "AWS::SQS::Queue"},
        }
    }
    new = {
        "Resources": {
            "Same": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "a"}},
            "Changed": {
                "Type": "AWS::SNS::Topic",
                "Properties": {"DisplayName": "y", "TopicName": "t"},
            },
            "New": {"Type": "AWS::DynamoDB::Table"},
        }
    }
    changes = compare(old, new)
    assert list(changes.lines()) == [
        "+ AWS::DynamoDB::Table New",
        "~ AWS::SNS::Topic Changed (DisplayName, TopicName)",
        "- AWS::SQS::Queue Gone",
        "Plan: 1 to add, 1 to change, 1 to remove.",
    ]
    assert compare(new, new).empty
    assert [a for a, _ in compare(None, new).added] == ["Same", "Changed", "New"]
