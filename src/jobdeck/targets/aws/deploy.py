"""``jobdeck deploy aws diff`` and ``deploy``: the synthesized cloud assembly against the
deployed stack, through CloudFormation with the user's credentials (boto3; no CDK CLI).

``deploy`` does what ``cdk deploy`` does for this one stack: it checks the CDK bootstrap
(``/cdk-bootstrap/hnb659fds/version``), publishes the file assets (the Lambda code, the
template) to the bootstrap bucket through the bootstrap's publishing role, creates a
change set through its deploy role (passing the CloudFormation execution role), executes
it and prints each stack event until the stack settles. Where a bootstrap role cannot
be assumed, the user's own credentials are used, as with ``cdk deploy``'s fallback.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
DONE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
FAILED_END = (
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED",
    "DELETE_COMPLETE",
)


class DeployError(Exception):
    """What is missing or went wrong, in words for the user."""


@dataclass
class Changes:
    added: list[tuple[str, str]] = field(default_factory=list)  # (logical id, type)
    changed: list[tuple[str, str, list[str]]] = field(default_factory=list)  # + properties
    removed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def lines(self) -> Iterator[str]:
        for logical, kind in self.added:
            yield f"+ {kind} {logical}"
        for logical, kind, keys in self.changed:
            yield f"~ {kind} {logical} ({', '.join(keys)})"
        for logical, kind in self.removed:
            yield f"- {kind} {logical}"
        yield (
            f"Plan: {len(self.added)} to add, {len(self.changed)} to change, "
            f"{len(self.removed)} to remove."
        )

    def json(self) -> dict[str, Any]:
        return {
            "changes": [{"action": "add", "kind": k, "name": n} for n, k in self.added]
            + [
                {"action": "change", "kind": k, "name": n, "diff": keys}
                for n, k, keys in self.changed
            ]
            + [{"action": "remove", "kind": k, "name": n} for n, k in self.removed]
        }


def compare(deployed: dict[str, Any] | None, wanted: dict[str, Any]) -> Changes:
    """Resources added, changed (with the properties that differ) and removed. Pure."""
    old = (deployed or {}).get("Resources", {})
    new = wanted.get("Resources", {})
    changes = Changes()
    for logical, resource in new.items():
        if logical not in old:
            changes.added.append((logical, resource["Type"]))
            continue
        before, after = old[logical], resource
        keys = sorted(
            key
            for key in {*before.get("Properties", {}), *after.get("Properties", {})}
            if before.get("Properties", {}).get(key) != after.get("Properties", {}).get(key)
        )
        if before["Type"] != after["Type"]:
            keys.insert(0, "Type")
        if keys:
            changes.changed.append((logical, after["Type"], keys))
    for logical, resource in old.items():
        if logical not in new:
            changes.removed.append((logical, resource["Type"]))
    return changes


def deployed_template(cloudformation: Any, stack: str) -> dict[str, Any] | None:
    """The stack's current template, or None when the stack does not exist."""
    from botocore.exceptions import ClientError

    try:
        body = cloudformation.get_template(StackName=stack, TemplateStage="Original")[
            "TemplateBody"
        ]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    if isinstance(body, str):
        loaded: dict[str, Any] = json.loads(body)
        return loaded
    return dict(body)


@dataclass(frozen=True)
class Where:
    account: str
    region: str
    partition: str = "aws"

    def fill(self, text: str) -> str:
        return (
            text.replace("${AWS::AccountId}", self.account)
            .replace("${AWS::Region}", self.region)
            .replace("${AWS::Partition}", self.partition)
        )


def check_bootstrap(ssm: Any, where: Where, needed: int) -> None:
    from botocore.exceptions import ClientError

    try:
        found = int(ssm.get_parameter(Name=BOOTSTRAP_PARAMETER)["Parameter"]["Value"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise DeployError(
                f"account {where.account} is not bootstrapped for the CDK in {where.region}: "
                f"run `npx aws-cdk bootstrap aws://{where.account}/{where.region}` once"
            ) from None
        raise
    if found < needed:
        raise DeployError(
            f"the CDK bootstrap of {where.region} is version {found}; this stack needs "
            f"{needed}: run `npx aws-cdk bootstrap aws://{where.account}/{where.region}` again"
        )


def publish_assets(assembly: Path, stack: str, s3_for: Callable[[str], Any], where: Where) -> None:
    manifest = json.loads((assembly / f"{stack}.assets.json").read_text())
    for asset in manifest.get("files", {}).values():
        source = assembly / asset["source"]["path"]
        for destination in asset["destinations"].values():
            s3 = s3_for(where.fill(destination.get("assumeRoleArn", "")))
            bucket = where.fill(destination["bucketName"])
            key = where.fill(destination["objectKey"])
            if _exists(s3, bucket, key):
                continue
            body = (
                _zipped(source)
                if asset["source"].get("packaging") == "zip"
                else source.read_bytes()
            )
            s3.put_object(Bucket=bucket, Key=key, Body=body)


def _exists(s3: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def _zipped(folder: Path) -> bytes:
    """The folder as a zip with fixed times, so that one content gives one archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(folder)), (1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def apply_change_set(
    cloudformation: Any,
    stack: str,
    template_url: str,
    execution_role: str | None,
    tags: dict[str, str],
    say: Callable[[str], None],
    poll: float = 2.0,
    timeout: float = 3600.0,
) -> str:
    """Create and execute a change set; print events until the stack settles. Returns
    the final status; raises DeployError when the deploy failed."""
    exists = deployed_template(cloudformation, stack) is not None
    name = f"jobdeck-{int(time.time())}"
    asked: dict[str, Any] = {
        "StackName": stack,
        "ChangeSetName": name,
        "TemplateURL": template_url,
        "ChangeSetType": "UPDATE" if exists else "CREATE",
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }
    if execution_role:
        asked["RoleARN"] = execution_role
    cloudformation.create_change_set(**asked)
    deadline = time.monotonic() + timeout
    while True:
        described = cloudformation.describe_change_set(StackName=stack, ChangeSetName=name)
        status = described["Status"]
        if status == "CREATE_COMPLETE":
            break
        if status == "FAILED":
            reason = described.get("StatusReason", "")
            if "didn't contain changes" in reason or "No updates" in reason:
                cloudformation.delete_change_set(StackName=stack, ChangeSetName=name)
                say("no changes: the stack is what the catalog says")
                return "UNCHANGED"
            raise DeployError(f"the change set failed: {reason}")
        _wait(deadline, poll)
    seen = {e["EventId"] for e in _events(cloudformation, stack)} if exists else set()
    cloudformation.execute_change_set(StackName=stack, ChangeSetName=name)
    while True:
        for event in reversed(_events(cloudformation, stack)):
            if event["EventId"] in seen:
                continue
            seen.add(event["EventId"])
            reason = (
                f": {event['ResourceStatusReason']}" if event.get("ResourceStatusReason") else ""
            )
            say(
                f"{event.get('ResourceStatus', '')} {event.get('ResourceType', '')} "
                f"{event.get('LogicalResourceId', '')}{reason}"
            )
        current = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        if current in DONE:
            return str(current)
        if current in FAILED_END:
            raise DeployError(f"the deploy failed: the stack is {current}; see the events above")
        _wait(deadline, poll)


def _events(cloudformation: Any, stack: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cloudformation.describe_stack_events(StackName=stack)[
        "StackEvents"
    ]
    return found


def _wait(deadline: float, poll: float) -> None:
    if time.monotonic() > deadline:
        raise DeployError("the deploy did not settle in time; see the stack in the console")
    time.sleep(poll)
