"""Commands: params, authorization, the one invocation path and its audit."""

from jobdeck.catalog.params import (
    InvalidParams,
    ParamProblem,
    parse_assignments,
    render_argv,
    split_words,
    validate,
)
from jobdeck.commands.authorize import Caller, Decision, authorize
from jobdeck.commands.decide import Prepared, Refused
from jobdeck.commands.invoke import Invocation, Invoker, prepare
from jobdeck.commands.usergroups import UserGroups

__all__ = [
    "Caller",
    "Decision",
    "InvalidParams",
    "Invocation",
    "Invoker",
    "ParamProblem",
    "Prepared",
    "Refused",
    "UserGroups",
    "authorize",
    "parse_assignments",
    "prepare",
    "render_argv",
    "split_words",
    "validate",
]
