"""``env`` values that name a secret instead of holding it (for the AWS target):

* ``ssm:/path/name`` -- an SSM Parameter Store parameter (String or SecureString);
* ``secretsmanager:ARN`` -- a Secrets Manager secret's whole value, and
  ``secretsmanager:ARN:key`` -- one key of a secret that holds JSON.

Pure; the catalog model checks their form, the AWS target turns them into references.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobdeck.catalog.load import Diagnostic, LoadedCatalog

SSM_PREFIX = "ssm:"
SECRETS_PREFIX = "secretsmanager:"
_SSM_RE = re.compile(r"ssm:(/[A-Za-z0-9_.\-/]+)")
_SECRET_RE = re.compile(
    r"secretsmanager:(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+)"
    r"(?::([^:]+))?"
)
# Secrets Manager appends '-' and six characters to a secret's name in its ARN.
_COMPLETE_ARN_RE = re.compile(r"-[A-Za-z0-9]{6}$")


@dataclass(frozen=True)
class EnvRef:
    kind: str  # "ssm" or "secretsmanager"
    target: str  # the parameter's name, or the secret's ARN
    key: str | None = None  # a JSON key of the secret

    @property
    def complete_arn(self) -> bool:
        """Whether the secret's ARN ends with the random suffix (else it is partial)."""
        return _COMPLETE_ARN_RE.search(self.target) is not None


def is_ref(value: str) -> bool:
    return value.startswith((SSM_PREFIX, SECRETS_PREFIX))


def parse_ref(value: str) -> EnvRef | None:
    """The reference ``value`` names; None for a plain value. Raises ValueError for a
    value that starts like a reference but is not one."""
    if value.startswith(SSM_PREFIX):
        found = _SSM_RE.fullmatch(value)
        if found is None:
            raise ValueError(
                f"{value!r} is not an SSM parameter reference; write ssm:/path/to/name"
            )
        return EnvRef("ssm", found.group(1))
    if value.startswith(SECRETS_PREFIX):
        secret = _SECRET_RE.fullmatch(value)
        if secret is None:
            raise ValueError(
                f"{value!r} is not a Secrets Manager reference; write "
                "secretsmanager:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:key]"
            )
        return EnvRef("secretsmanager", secret.group(1), secret.group(2))
    return None


def refs_of(env: dict[str, str]) -> dict[str, EnvRef]:
    """The variables of ``env`` whose values are references (checked by the model)."""
    found: dict[str, EnvRef] = {}
    for key, value in env.items():
        ref = parse_ref(value)
        if ref is not None:
            found[key] = ref
    return found


def local_refusals(loaded: LoadedCatalog) -> list[Diagnostic]:
    """The local engine does not read AWS secrets (it would need AWS credentials at every
    launch, and a run must not depend on them): a catalog with references is refused by
    ``jobdeck apply`` with each one's place, and deploys with ``jobdeck deploy aws``."""
    from jobdeck.catalog.load import Diagnostic
    from jobdeck.catalog.positions import parse

    _, positions = parse(loaded.text)
    found: list[Diagnostic] = []
    for section in ("defaults", "schedules", "workers", "commands"):
        items = {"": loaded.catalog.defaults} if section == "defaults" else {}
        items.update(getattr(loaded.catalog, section) if section != "defaults" else {})
        for name, spec in items.items():
            loc: tuple[str, ...] = (section, "env") if not name else (section, name, "env")
            for key in refs_of(getattr(spec, "env", None) or {}):
                if not positions.has((*loc, key)):
                    continue  # from defaults: reported there
                line, column = positions.value((*loc, key))
                found.append(
                    Diagnostic(
                        loaded.path,
                        line,
                        column,
                        f"{'.'.join((*loc, key))}: names an AWS secret, which only the AWS "
                        "target reads (jobdeck deploy aws); the local engine needs the value "
                        "itself: give it here, or keep this catalog for AWS",
                    )
                )
    return found
