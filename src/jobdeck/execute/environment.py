"""What a run inherits from the engine's environment: an allow-list, never the engine's
secrets.

A run's environment is built from, in order (later wins): the basics of the engine's
environment (:data:`BASICS`, :data:`BASIC_PREFIXES`), the variables the operator names
(``--pass-env`` / ``JOBDECK_PASS_ENV``, names or ``fnmatch`` patterns), the SQS
variables jobdeck issues when it serves the endpoint, the catalog's ``env`` of the item,
and jobdeck's own run variables (``JOBDECK_RUN_ID`` ...). Everything else of the
engine's environment stays with the engine: its store URL, its tokens, its webhook
secret, its cloud credentials. The engine's secrets (:data:`NEVER`) are not passed even
when a pattern names them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping

PASS_ENV = "JOBDECK_PASS_ENV"

# What a program expects of any Unix session, and where to find CA certificates.
BASICS = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "TMPDIR",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    }
)
BASIC_PREFIXES = ("LC_",)

# The engine's secrets: never in a run, whatever the operator's patterns say.
NEVER = frozenset(
    {
        "JOBDECK_API_TOKEN",
        "JOBDECK_STORE",
        "JOBDECK_WEBHOOK_SECRET",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
    }
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*[*?]?[A-Za-z0-9_*?]*|\*")


class PassEnvError(ValueError):
    """An operator's ``--pass-env`` entry is not a variable name or pattern."""


def pass_env_patterns(environ: Mapping[str, str], given: Iterable[str] = ()) -> tuple[str, ...]:
    """The names and patterns of ``--pass-env`` and ``JOBDECK_PASS_ENV`` (comma or space
    separated); refused when one is not a name, nor a pattern of one."""
    raw = [*given, *environ.get(PASS_ENV, "").replace(",", " ").split()]
    patterns: list[str] = []
    for entry in (e.strip() for e in raw):
        if not entry:
            continue
        if not _NAME.fullmatch(entry):
            raise PassEnvError(
                f"--pass-env / {PASS_ENV}: {entry!r} is not a variable name or a pattern "
                "of names (letters, digits, _, and * or ?)"
            )
        patterns.append(entry)
    return tuple(dict.fromkeys(patterns))


def is_secret(name: str) -> bool:
    return name in NEVER or (name.startswith("SLACK_") and name.endswith(("TOKEN", "SECRET")))


def inherited(environ: Mapping[str, str], patterns: Iterable[str] = ()) -> dict[str, str]:
    """What runs take from the engine's environment ``environ``."""
    named = tuple(patterns)
    kept: dict[str, str] = {}
    for name, value in environ.items():
        if is_secret(name):
            continue
        if (
            name in BASICS
            or name.startswith(BASIC_PREFIXES)
            or any(fnmatch.fnmatchcase(name, p) for p in named)
        ):
            kept[name] = value
    return kept
