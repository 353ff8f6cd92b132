"""The base of the catalog's models: the strict, frozen ``Spec``, the validation error
that the loader places at ``FILE:LINE:COL``, and the one-of rules shared by the models and
the loader."""

from __future__ import annotations

import re
import weakref
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from jobdeck.catalog.types import ENV_RE, EnvName, EnvValue


def keys_schema(pattern: re.Pattern[str]) -> JsonDict:
    """JSON Schema for the keys of a mapping: pydantic publishes a key pattern only as
    ``patternProperties``, which still lets other keys through."""
    return {"propertyNames": {"pattern": f"^{pattern.pattern}$"}}


Env = Annotated[dict[EnvName, EnvValue], Field(json_schema_extra=keys_schema(ENV_RE))]


def problem(message: str, at: str | None = None) -> PydanticCustomError:
    """A validation error; ``at`` names the key it is about, inside the item.

    The loader reports it at that key, as ``<item path>.<at>: <message>``, so the message
    says what is wrong and how to fix it without repeating the key's name.
    """
    return PydanticCustomError("catalog", "{message}", {"message": message, "at": at})


# Pairs of keys of which an item takes one: (first, second, one of them is required).
ONE_OF: dict[str, list[tuple[str, str, bool]]] = {
    "schedules": [("cron", "rate", True), ("command", "shell", True)],
    "workers": [("command", "shell", True), ("replicas", "autoscale", False)],
    "monitors": [("cron", "rate", True)],
}


def one_of_problems(section: str, present: set[str]) -> list[tuple[str | None, str]]:
    """(key to point at, message) for each ONE_OF rule that ``present`` keys break.

    Used both by the models and, on the raw YAML, by the loader, so that these rules are
    reported even when other fields of the same item are invalid.
    """
    found: list[tuple[str | None, str]] = []
    for first, second, required in ONE_OF.get(section, []):
        if first in present and second in present:
            found.append((second, f"cannot be combined with '{first}'; keep one of the two"))
        elif required and first not in present and second not in present:
            found.append((None, f"neither '{first}' nor '{second}' is given; add one of them"))
    return found


def check_one_of(section: str, spec: BaseModel) -> None:
    present = {name for name in type(spec).model_fields if getattr(spec, name) is not None}
    for at, message in one_of_problems(section, present):
        raise problem(message, at)


# Models that were given the same fields share one set of their names. Pydantic keeps a
# set per instance, about 2 KB each; a catalog read back from the store gives every field,
# so at 10,000 schedules that was 25 MB of identical sets. A shared set stays a ``set``
# (``model_copy`` copies it before it adds to it), and no code of ours changes it.
_FIELDS_SETS: weakref.WeakValueDictionary[frozenset[str], set[str]] = weakref.WeakValueDictionary()

_M = TypeVar("_M", bound=BaseModel)


def share_fields_set(model: _M) -> _M:
    """``model`` with its set of given fields swapped for the one shared by every model
    given the same fields (for copies, which skip the validators)."""
    given = model.__pydantic_fields_set__
    key = frozenset(given)
    shared = _FIELDS_SETS.get(key)
    if shared is None:
        shared = _FIELDS_SETS.setdefault(key, set(given))
    object.__setattr__(model, "__pydantic_fields_set__", shared)
    return model


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="after")
    def _share_fields_set(self) -> Spec:
        return share_fields_set(self)
