"""Test-only patches of moto's Step Functions interpreter, where it differs from AWS.

moto runs state machines for real when its ``stepfunctions.execute_state_machine``
config is on, but (moto 5.x, see moto issue 10076 and its pull request 10101) some of
its service integrations do not yet behave as AWS documents them. Each patch below
makes one of them behave as AWS does; none touches jobdeck's code, and each is undone
when the test ends (``pytest.MonkeyPatch``).

* **Parameter and result casing** (moto issue 10076): ASL parameters use the service
  API's member names in PascalCase (``StateMachineArn``, ``TaskDefinition``), results
  come back in PascalCase too (``ExecutionArn``, ``Tasks``). moto's interpreter has the
  shape-driven converters for this (``_to_boto_request`` / ``_from_boto_response``) but
  its ``_normalise_parameters`` / ``_normalise_response`` hooks are empty, so boto3
  receives names it does not know and the ECS and Step Functions integrations fail.
  The patch fills the two hooks with those converters, for every integration.
* **ECS errors**: an ECS API error surfaces in moto as ``States.Runtime``; AWS names it
  ``ECS.AmazonECSException`` (which the workflow retries). And moto returns any STOPPED
  task of ``ecs:runTask.sync`` as a success, where AWS fails the state with
  ``States.TaskFailed`` (the task's description as the cause) unless the essential
  container exited 0. moto's tasks have no process that exits: the reason given to
  StopTask stands in for how the task ended (``EXITED_OK`` means exit code 0).
* **Timeouts of .sync tasks**: moto polls a ``.sync`` integration until it ends and
  ignores the state's ``TimeoutSeconds``; AWS fails the state with ``States.Timeout``.

The tests also pin moto's ECS tasks at RUNNING (its state manager would otherwise walk
them to STOPPED after a few calls): Fargate tasks end when the test says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import botocore.session
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.model import OperationModel
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
    CustomErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (  # noqa: E501
    StateTaskService,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (  # noqa: E501
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (  # noqa: E501
    StateTaskServiceEcs,
)
from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackTimeoutError
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

_SESSION = botocore.session.get_session()

# The stopped reason a test gives StopTask for "the essential container exited 0".
EXITED_OK = "Essential container in task exited"


def apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StateTaskService, "_normalise_parameters", _to_boto)
    monkeypatch.setattr(StateTaskService, "_normalise_response", _from_boto)
    original_ecs_from_error = StateTaskServiceEcs._from_error
    monkeypatch.setattr(
        StateTaskServiceEcs, "_from_error", _ecs_from_error(original_ecs_from_error)
    )
    original_sync = StateTaskServiceCallback._eval_sync
    monkeypatch.setattr(StateTaskServiceCallback, "_eval_sync", _sync_with_timeout(original_sync))
    original_resolver = StateTaskServiceEcs._build_sync_resolver
    monkeypatch.setattr(
        StateTaskServiceEcs, "_build_sync_resolver", _ecs_sync_resolver(original_resolver)
    )


def _operation(
    service: StateTaskService, boto_service_name: str | None, action: str | None
) -> OperationModel:
    name = service._get_boto_service_name(boto_service_name=boto_service_name)
    model = _SESSION.get_service_model(name)
    snake = service._get_boto_service_action(service_action_name=action)
    operation = next(op for op in model.operation_names if xform_name(op) == snake)
    return model.operation_model(operation)


def _to_boto(
    self: StateTaskService,
    parameters: dict[str, Any],
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    shape = _operation(self, boto_service_name, service_action_name).input_shape
    if shape is not None:
        self._to_boto_request(parameters, shape)


def _from_boto(
    self: StateTaskService,
    response: Any,
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    shape = _operation(self, boto_service_name, service_action_name).output_shape
    if shape is not None:
        self._from_boto_response(response, shape)


def _ecs_from_error(original: Callable[..., FailureEvent]) -> Callable[..., FailureEvent]:
    def from_error(self: StateTaskServiceEcs, env: Environment, ex: Exception) -> FailureEvent:
        if isinstance(ex, ClientError):
            return _task_failed(self, env, "ECS.AmazonECSException", str(ex))
        return original(self, env, ex)

    return from_error


def _ecs_sync_resolver(original: Callable[..., Any]) -> Callable[..., Any]:
    def build(self: StateTaskServiceEcs, env: Environment, *args: Any, **kwargs: Any) -> Any:
        resolve = original(self, env, *args, **kwargs)

        def resolve_like_aws() -> Any:
            task = resolve()
            if task is None or task.get("StoppedReason") == EXITED_OK:
                return task
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(  # type: ignore[typeddict-item]  # moto's own
                        taskFailedEventDetails=TaskFailedEventDetails(
                            resource=self._get_sfn_resource(),
                            resourceType=self._get_sfn_resource_type(),
                            error=StatesErrorNameType.StatesTaskFailed.to_name(),
                            cause=to_json_str(task),
                        )
                    ),
                )
            )

        return resolve_like_aws

    return build


def _sync_with_timeout(original: Callable[..., Any]) -> Callable[..., Any]:
    def eval_sync(
        self: StateTaskServiceCallback,
        env: Environment,
        sync_resolver: Callable[[], Any] | None,
        timeout_seconds: int | None,
        callback_endpoint: Any,
        heartbeat_endpoint: Any,
    ) -> Any:
        deadline = time.monotonic() + timeout_seconds if timeout_seconds else None
        assert sync_resolver is not None

        def resolve_until_timeout() -> Any:
            if deadline is not None and time.monotonic() >= deadline:
                raise CallbackTimeoutError()  # a TimeoutError: States.Timeout
            return sync_resolver()

        return original(
            self, env, resolve_until_timeout, timeout_seconds, callback_endpoint, heartbeat_endpoint
        )

    return eval_sync


def _task_failed(service: Any, env: Environment, error: str, cause: str) -> FailureEvent:
    return FailureEvent(
        env=env,
        error_name=CustomErrorName(error),
        event_type=HistoryEventType.TaskFailed,
        event_details=EventDetails(  # type: ignore[typeddict-item]  # moto's own
            taskFailedEventDetails=TaskFailedEventDetails(
                error=error,
                cause=cause,
                resource=service._get_sfn_resource(),
                resourceType=service._get_sfn_resource_type(),
            )
        ),
    )
