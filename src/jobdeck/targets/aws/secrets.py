"""``env`` values that name secrets (``ssm:/path``, ``secretsmanager:ARN[:key]``) as
references: ECS task ``Secrets`` read by the task's execution role, and reads on the
tools host at run time, each granted exactly the parameters and secrets named. The value
is never in the template, the task definition's environment or an SSM document."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from jobdeck.catalog.env_refs import EnvRef, refs_of


def split_env(
    scope: Construct, env: dict[str, str]
) -> tuple[dict[str, str], dict[str, ecs.Secret]]:
    """(plain variables, ECS secrets); granting the execution role is CDK's, per secret."""
    refs = refs_of(env)
    plain = {key: value for key, value in env.items() if key not in refs}
    found: dict[str, ecs.Secret] = {}
    for key, ref in refs.items():
        if ref.kind == "ssm":
            parameter = ssm.StringParameter.from_secure_string_parameter_attributes(
                scope, f"{key}-parameter", parameter_name=ref.target
            )
            found[key] = ecs.Secret.from_ssm_parameter(parameter)
        else:
            found[key] = ecs.Secret.from_secrets_manager(_secret(scope, key, ref), ref.key)
    return plain, found


def _secret(scope: Construct, key: str, ref: EnvRef) -> secretsmanager.ISecret:
    if ref.complete_arn:
        return secretsmanager.Secret.from_secret_complete_arn(scope, f"{key}-secret", ref.target)
    return secretsmanager.Secret.from_secret_partial_arn(scope, f"{key}-secret", ref.target)


def host_statements(stack: Stack, refs: Iterable[EnvRef]) -> list[iam.PolicyStatement]:
    """What the tools host needs to read exactly these references at run time."""
    parameters = sorted({r.target for r in refs if r.kind == "ssm"})
    secrets = sorted({r.target for r in refs if r.kind == "secretsmanager"})
    statements = []
    if parameters:
        statements.append(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"],
                resources=[
                    stack.format_arn(
                        service="ssm", resource="parameter", resource_name=name.lstrip("/")
                    )
                    for name in parameters
                ],
            )
        )
    if secrets:
        statements.append(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                # A partial ARN (no random suffix) matches the secret's full ARN so.
                resources=[
                    arn if EnvRef("secretsmanager", arn).complete_arn else f"{arn}-??????"
                    for arn in secrets
                ],
            )
        )
    return statements
