"""Catalog commands and warm schedules -> SSM documents that run them on the tools host. Pure.

A param never reaches the shell as text: each is declared with ``interpolationType:
ENV_VAR``, so SSM hands it to the script as the environment variable ``SSM_<name>``
and the script passes ``"$SSM_<name>"`` as (part of) one argv element, like the local
engine substitutes a param into one argv element. ``allowedPattern`` / ``allowedValues``
repeat the catalog's rules so that SSM refuses a bad value before anything runs.
"""

from __future__ import annotations

import shlex
from string import Formatter
from typing import Any

from jobdeck.catalog.command_parts import Param
from jobdeck.catalog.env_refs import EnvRef, refs_of
from jobdeck.catalog.model import Command, Schedule

# SSM's default for ENV_VAR string params refuses no character; these mirror params.py.
_PATTERNS = {
    "int": r"^[+-]?[0-9]+$",
    "float": r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$",
    "bool": r"^(?i:true|false|yes|no|on|off|1|0)$",
    "url": r"^https?://[^\s]+$",
}


def argv_script(argv: list[str], workdir: str, env: dict[str, str]) -> list[str]:
    """Shell lines that run ``argv`` with ``{param}`` fields read from ``$SSM_param``."""
    lines = ["set -eu"]
    if workdir not in ("", "."):
        lines.append(f"cd {shlex.quote(workdir)}")
    refs = refs_of(env)
    for key, value in sorted(env.items()):
        ref = refs.get(key)
        if ref is None:
            lines.append(f"export {key}={shlex.quote(value)}")
        else:
            lines.extend(_read_ref(key, ref))
    lines.append("exec " + " ".join(_word(arg) for arg in argv))
    return lines


def _read_ref(key: str, ref: EnvRef) -> list[str]:
    """Lines that read a secret on the host at run time (the AWS CLI of Amazon Linux,
    with the host's role). An assignment, then ``export``: a failed read stops the
    script under ``set -e`` (``export K="$(...)"`` would hide the failure)."""
    target = shlex.quote(ref.target)
    if ref.kind == "ssm":
        read = (
            f"aws ssm get-parameter --with-decryption --name {target} "
            "--query Parameter.Value --output text"
        )
        return [f'{key}="$({read})"', f"export {key}"]
    read = (
        f"aws secretsmanager get-secret-value --secret-id {target} "
        "--query SecretString --output text"
    )
    if ref.key is None:
        return [f'{key}="$({read})"', f"export {key}"]
    pick = "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])"
    return [
        f'{key}="$({read})"',
        f'{key}="$(printf %s "${key}" | python3 -c {shlex.quote(pick)} {shlex.quote(ref.key)})"',
        f"export {key}",
    ]


def _word(arg: str) -> str:
    """One argv element as one shell word; ``{name}`` becomes a quoted ``$SSM_name``."""
    parts: list[str] = []
    for literal, field, _, _ in Formatter().parse(arg):
        if literal:
            parts.append(shlex.quote(literal))
        if field is not None:
            parts.append(f'"${{SSM_{field}}}"')
    return "".join(parts) or "''"


def ssm_parameter(param: Param) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "String",
        "description": param.description or f"a {param.type} value",
        "interpolationType": "ENV_VAR",
    }
    if param.type == "choice" and param.choices:
        spec["allowedValues"] = list(param.choices)
    elif param.pattern is not None:
        spec["allowedPattern"] = _anchored(param.pattern)
    elif param.type in _PATTERNS:
        spec["allowedPattern"] = _PATTERNS[param.type]
    if param.type == "string" and param.max_length is not None and "allowedPattern" not in spec:
        spec["allowedPattern"] = f"^[\\s\\S]{{0,{param.max_length}}}$"
    if param.default is not None:
        value = param.default
        spec["default"] = str(value).lower() if isinstance(value, bool) else str(value)
    elif not param.required:
        # Left out, an optional param is empty (as locally); SSM checks defaults too.
        spec["default"] = ""
        if "allowedValues" in spec:
            spec["allowedValues"].append("")
        if "allowedPattern" in spec:
            spec["allowedPattern"] = f"^$|{spec['allowedPattern']}"
    return spec


def _anchored(pattern: str) -> str:
    """The catalog matches a pattern against the whole value (re.fullmatch)."""
    return f"^(?:{pattern})$"


def command_document(name: str, command: Command) -> dict[str, Any]:
    return {
        "schemaVersion": "2.2",
        "description": command.description or f"jobdeck command {name}",
        "parameters": {key: ssm_parameter(param) for key, param in command.params.items()},
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "run",
                "inputs": {
                    "runCommand": argv_script(command.command, command.workdir, command.env),
                    "timeoutSeconds": str(int(command.timeout.total_seconds())),
                },
            }
        ],
    }


def schedule_document(name: str, schedule: Schedule) -> dict[str, Any]:
    if schedule.command is not None:
        lines = argv_script(schedule.command, schedule.workdir, schedule.env)
    else:
        assert schedule.shell is not None
        lines = argv_script(["/bin/sh", "-c", schedule.shell], schedule.workdir, schedule.env)
    return {
        "schemaVersion": "2.2",
        "description": schedule.description or f"jobdeck schedule {name}",
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "run",
                "inputs": {
                    "runCommand": lines,
                    "timeoutSeconds": str(int(schedule.timeout.total_seconds())),
                },
            }
        ],
    }
