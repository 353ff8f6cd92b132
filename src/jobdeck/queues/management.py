"""SQS's actions around queues rather than messages: tags, permissions (statements of
the queue's Policy) and message-move tasks."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from jobdeck.queues.attributes import LOCAL_ACCOUNT_ID, name_from_arn, queue_arn
from jobdeck.queues.core import ServiceCore, now_ms, read_queue
from jobdeck.queues.errors import SqsError, invalid_parameter, missing_parameter
from jobdeck.queues.moves import RUNNING, move_dead_letters
from jobdeck.queues.params import Params, Result, as_int, required
from jobdeck.store import Tx
from jobdeck.store.queue_records import MoveTask

MAX_TAGS = 50
# The actions a permission may grant, as AddPermission names them.
PERMISSION_ACTIONS = frozenset(
    {
        "*",
        "ChangeMessageVisibility",
        "DeleteMessage",
        "GetQueueAttributes",
        "GetQueueUrl",
        "ListDeadLetterSourceQueues",
        "PurgeQueue",
        "ReceiveMessage",
        "SendMessage",
    }
)
MAX_MOVE_TASKS_LISTED = 10
# The permission a batch action needs is its single action's, as in SQS.
_PERMISSION_OF = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def check_tags(tags: Any, name: str) -> dict[str, str]:
    """Tags as TagQueue and CreateQueue take them, or SQS's refusal."""
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise invalid_parameter(f"{name} must be a map of strings to strings.")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
            raise invalid_parameter(
                f"Tag key {key!r} is invalid: 1 to 128 characters, not starting with aws:."
            )
        if len(value) > 256:
            raise invalid_parameter(f"Tag value for {key!r} is over 256 characters.")
    return dict(tags)


def string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise (
            missing_parameter(name)
            if not value
            else invalid_parameter(f"{name} must be a list of strings.")
        )
    return value


class ManagementActions(ServiceCore):
    # -- tags ------------------------------------------------------------------------

    def tag_queue(self, params: Params) -> Result:
        name = self.queue_name(params)
        tags = check_tags(required(params, "Tags"), "Tags")
        with self.transaction() as tx:
            read_queue(tx, name)
            merged = {**tx.queues.queue_tags(name), **tags}
            if len(merged) > MAX_TAGS:
                raise invalid_parameter(f"Too many tags added for queue {name}.")
            tx.queues.set_queue_tags(name, merged)
        return {}

    def untag_queue(self, params: Params) -> Result:
        name = self.queue_name(params)
        keys = string_list(params.get("TagKeys"), "TagKeys")
        with self.transaction() as tx:
            read_queue(tx, name)
            tags = tx.queues.queue_tags(name)
            tx.queues.set_queue_tags(name, {k: v for k, v in tags.items() if k not in keys})
        return {}

    def list_queue_tags(self, params: Params) -> Result:
        name = self.queue_name(params)
        with self.store.reading() as tx:
            read_queue(tx, name)
            tags = tx.queues.queue_tags(name)
        return {"Tags": tags} if tags else {}

    # -- permissions -----------------------------------------------------------------

    def add_permission(self, params: Params) -> Result:
        name = self.queue_name(params)
        label = _label(params)
        accounts = string_list(params.get("AWSAccountIds"), "AWSAccountIds")
        actions = string_list(params.get("Actions"), "Actions")
        for account in accounts:
            if not (len(account) == 12 and account.isdigit()):
                raise invalid_parameter(
                    f"Value {account} for parameter AWSAccountIds is invalid: an account "
                    "is 12 digits."
                )
        for action in actions:
            if action not in PERMISSION_ACTIONS:
                raise invalid_parameter(
                    f"Value SQS:{action} for parameter ActionName is invalid. Reason: Only "
                    "the queue owner is allowed to invoke this action."
                )
        self._known.pop(name, None)
        with self.transaction() as tx:
            queue = read_queue(tx, name)
            policy = _policy(queue.settings.extra.get("Policy"), name)
            statements: list[Any] = policy["Statement"]
            if any(s.get("Sid") == label for s in statements if isinstance(s, dict)):
                raise invalid_parameter(
                    f"Value {label} for parameter Label is invalid. Reason: Already exists."
                )
            statements.append(
                {
                    "Sid": label,
                    "Effect": "Allow",
                    "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in accounts]},
                    "Action": [f"SQS:{a}" for a in actions],
                    "Resource": queue_arn(name),
                }
            )
            self._store_policy(tx, name, policy)
        return {}

    def remove_permission(self, params: Params) -> Result:
        name = self.queue_name(params)
        label = _label(params)
        self._known.pop(name, None)
        with self.transaction() as tx:
            queue = read_queue(tx, name)
            policy = _policy(queue.settings.extra.get("Policy"), name)
            kept = [
                s
                for s in policy["Statement"]
                if not (isinstance(s, dict) and s.get("Sid") == label)
            ]
            if len(kept) == len(policy["Statement"]):
                raise invalid_parameter(
                    f"Value {label} for parameter Label is invalid. Reason: can't find label "
                    "on existing policy."
                )
            policy["Statement"] = kept
            self._store_policy(tx, name, policy if kept else None)
        return {}

    def _store_policy(self, tx: Tx, name: str, policy: dict[str, Any] | None) -> None:
        queue = read_queue(tx, name)
        extra = dict(queue.settings.extra)
        if policy is None:
            extra.pop("Policy", None)
        else:
            extra["Policy"] = json.dumps(policy, separators=(",", ":"))
        settings = replace(queue.settings, extra=extra)
        tx.queues.update_queue(name, settings=settings, now_ms=now_ms(self.clock))
        self._known.pop(name, None)

    def authorize(self, action: str, account: str, params: Params) -> Result:
        """Lets a key of another ``account`` run ``action`` only where the queue's Policy
        allows that account (or everyone) that action, and no statement denies it; what
        no permission can grant (creating, listing, tagging, ...) stays the owner's."""
        permission = _PERMISSION_OF.get(action, action)
        if permission not in PERMISSION_ACTIONS:
            raise _access_denied(action)
        if action == "GetQueueUrl":
            name = required(params, "QueueName")
            if not isinstance(name, str):
                raise invalid_parameter("Value for parameter QueueName is invalid.")
        else:
            name = self.queue_name(params)
        with self.store.reading() as tx:
            queue = self._queue_or_none(tx, name)
        if queue is None:
            raise _access_denied(action)
        policy = _policy(queue.settings.extra.get("Policy"), name)
        effects = {
            s.get("Effect")
            for s in policy["Statement"]
            if isinstance(s, dict)
            and _principal_matches(s.get("Principal"), account)
            and _action_matches(s.get("Action"), permission)
        }
        if "Allow" not in effects or "Deny" in effects:
            raise _access_denied(action)
        return {}

    # -- message-move tasks ----------------------------------------------------------

    def start_message_move_task(self, params: Params) -> Result:
        source = _queue_of_arn(required(params, "SourceArn"), "SourceArn")
        destination_arn = params.get("DestinationArn")
        destination = (
            None if destination_arn is None else _queue_of_arn(destination_arn, "DestinationArn")
        )
        rate = params.get("MaxNumberOfMessagesPerSecond")
        if rate is not None:
            rate = as_int(rate, "MaxNumberOfMessagesPerSecond")
            if not 1 <= rate <= 500:
                raise invalid_parameter(
                    "Value for parameter MaxNumberOfMessagesPerSecond is invalid. Reason: "
                    "must be between 1 and 500."
                )
        with self.transaction() as tx:
            _existing_or_not_found(tx, source, "SourceArn")
            if destination is not None:
                _existing_or_not_found(tx, destination, "DestinationArn")
            if not tx.queues.dead_letter_sources(source):
                raise invalid_parameter("Source queue must be configured as a Dead Letter Queue.")
            if any(t.status == RUNNING for t in tx.queues.move_tasks(source, 1)):
                raise invalid_parameter("There is already a task running for this queue.")
            done = move_dead_letters(
                tx, source, now_ms(self.clock), destination=destination, max_per_second=rate
            )
        return {"TaskHandle": done.task.handle}

    def list_message_move_tasks(self, params: Params) -> Result:
        source = _queue_of_arn(required(params, "SourceArn"), "SourceArn")
        limit = as_int(params.get("MaxResults", 1), "MaxResults")
        if not 1 <= limit <= MAX_MOVE_TASKS_LISTED:
            raise invalid_parameter(
                "Value for parameter MaxResults is invalid. Reason: must be between 1 and 10."
            )
        with self.store.reading() as tx:
            _existing_or_not_found(tx, source, "SourceArn")
            tasks = tx.queues.move_tasks(source, limit)
        return {"Results": [_task_entry(t) for t in tasks]}

    def cancel_message_move_task(self, params: Params) -> Result:
        handle = required(params, "TaskHandle")
        if not isinstance(handle, str):
            raise invalid_parameter("Value for parameter TaskHandle is invalid.")
        with self.store.reading() as tx:
            task = tx.queues.move_task(handle)
        if task is None:
            raise SqsError("ResourceNotFoundException", "Task does not exist.")
        # Tasks run to their end as they start (see jobdeck.queues.moves): none is ever
        # still running to cancel.
        raise SqsError("ResourceNotFoundException", "Only active tasks can be cancelled.")


def _access_denied(action: str) -> SqsError:
    return SqsError(
        "AccessDenied", f"Access to the resource is denied: {action} is not granted to you."
    )


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _principal_matches(principal: Any, account: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    names = _listed(principal.get("AWS"))
    return any(n in ("*", account, f"arn:aws:iam::{account}:root") for n in names)


def _action_matches(actions: Any, permission: str) -> bool:
    wanted = {"*", "sqs:*", f"sqs:{permission.lower()}"}
    return any(isinstance(a, str) and a.lower() in wanted for a in _listed(actions))


def _labelled(statement: Any, label: str) -> bool:
    return isinstance(statement, dict) and statement.get("Sid") == label


def _label(params: Params) -> str:
    label = required(params, "Label")
    if not isinstance(label, str) or not 1 <= len(label) <= 80:
        raise invalid_parameter("Value for parameter Label is invalid: 1 to 80 characters.")
    return label


def _policy(text: str | None, name: str) -> dict[str, Any]:
    """The queue's policy document, or a new one with no statements."""
    if text:
        try:
            policy = json.loads(text)
        except ValueError:
            policy = None
        if isinstance(policy, dict) and isinstance(policy.get("Statement"), list):
            return policy
        if isinstance(policy, dict) and isinstance(policy.get("Statement"), dict):
            return {**policy, "Statement": [policy["Statement"]]}
    return {
        "Version": "2012-10-17",
        "Id": f"{queue_arn(name)}/SQSDefaultPolicy",
        "Statement": [],
    }


def _queue_of_arn(arn: Any, parameter: str) -> str:
    name = name_from_arn(arn) if isinstance(arn, str) else None
    if name is None or arn.split(":")[4] != LOCAL_ACCOUNT_ID:
        raise invalid_parameter(f"Value for parameter {parameter} is invalid: not a queue ARN.")
    return name


def _existing_or_not_found(tx: Tx, name: str, parameter: str) -> None:
    # Move tasks answer ResourceNotFoundException for a missing queue, as SQS does (it
    # is the only error their model declares), not NonExistentQueue.
    if tx.queues.queue(name) is None:
        raise SqsError(
            "ResourceNotFoundException",
            f"The resource that you specified for the {parameter} parameter doesn't exist.",
        )


def _task_entry(task: MoveTask) -> Result:
    entry: Result = {
        "Status": task.status,
        "SourceArn": queue_arn(task.source),
        "ApproximateNumberOfMessagesMoved": task.moved,
        "ApproximateNumberOfMessagesToMove": task.to_move,
        "StartedTimestamp": task.started_ms,
    }
    if task.status == RUNNING:
        entry["TaskHandle"] = task.handle
    if task.destination is not None:
        entry["DestinationArn"] = queue_arn(task.destination)
    if task.max_per_second is not None:
        entry["MaxNumberOfMessagesPerSecond"] = task.max_per_second
    if task.failure is not None:
        entry["FailureReason"] = task.failure
    return entry
