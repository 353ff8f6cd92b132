"""Test helpers: state machine definitions out of a synthesized template.

CDK writes a definition as ``Fn::Join`` of JSON text and references (``Ref``,
``Fn::GetAtt``). ``flatten`` resolves those references with a function of (logical id,
attribute), so that the same definition can be handed to cfn-lint and ASL validators
(with placeholder ARNs) or run in moto (with the ARNs of resources made there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Resolve = Callable[[str, str | None], str]

_PLACEHOLDERS = {
    "AWS::StepFunctions::StateMachine": "arn:aws:states:us-east-1:123456789012:stateMachine:{id}",
    "AWS::SNS::Topic": "arn:aws:sns:us-east-1:123456789012:{id}",
    "AWS::ECS::Cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/{id}",
    "AWS::ECS::TaskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/{id}:1",
    "AWS::EC2::Subnet": "subnet-{id}",
    "AWS::EC2::SecurityGroup": "sg-{id}",
}


def flatten(value: Any, resolve: Resolve) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(str(flatten(part, resolve)) for part in parts)
        if set(value) == {"Ref"}:
            return resolve(value["Ref"], None)
        if set(value) == {"Fn::GetAtt"}:
            logical, attribute = value["Fn::GetAtt"]
            return resolve(logical, attribute)
        return {key: flatten(item, resolve) for key, item in value.items()}
    if isinstance(value, list):
        return [flatten(item, resolve) for item in value]
    return value


def placeholders(template: dict[str, Any]) -> Resolve:
    """Plausible IDs and ARNs by resource type (``AWS::Region`` and the like included)."""
    resources = template["Resources"]

    def resolve(logical: str, attribute: str | None) -> str:
        if logical == "AWS::Region":
            return "us-east-1"
        if logical in ("AWS::AccountId",):
            return "123456789012"
        if logical in ("AWS::Partition",):
            return "aws"
        kind = resources[logical]["Type"]
        pattern = _PLACEHOLDERS.get(kind, "arn:aws:cloudformation:us-east-1:123456789012:{id}")
        return pattern.format(id=logical.lower())

    return resolve


def definitions(template: dict[str, Any], resolve: Resolve) -> dict[str, dict[str, Any]]:
    """Each state machine's definition, by logical id, parsed."""
    found: dict[str, dict[str, Any]] = {}
    for logical, resource in template["Resources"].items():
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            text = flatten(resource["Properties"]["DefinitionString"], resolve)
            found[logical] = json.loads(text)
    return found


def flattened_template(template: dict[str, Any]) -> dict[str, Any]:
    """The template with every definition as one literal string (placeholder ARNs), which
    is what cfn-lint validates as ASL."""
    resolve = placeholders(template)
    copy: dict[str, Any] = json.loads(json.dumps(template))
    for resource in copy["Resources"].values():
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            properties = resource["Properties"]
            properties["DefinitionString"] = flatten(properties["DefinitionString"], resolve)
    return copy
