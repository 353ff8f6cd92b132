"""``jobdeck deploy aws synth|diff|deploy``: the catalog as a CDK cloud assembly, what a
deploy would change, and the deploy itself (SPEC section 8)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jobdeck.cli.context import EXIT_INVALID, EXIT_REFUSED, JsonFlag, fail, load, print_json

if TYPE_CHECKING:
    from jobdeck.catalog.load import LoadedCatalog

OutputOption = Annotated[
    Path | None,
    typer.Option(
        "-o", "--output", help="Where to write the cloud assembly (else a temporary one)."
    ),
]


def register(app: typer.Typer) -> None:
    deploy = typer.Typer(help="Deploy the catalog to other infrastructure.", no_args_is_help=True)
    aws = typer.Typer(help="The AWS target (needs jobdeck[aws] and Node.js).", no_args_is_help=True)
    aws.command("synth")(synth)
    aws.command("diff")(diff)
    aws.command("deploy")(deploy_stack)
    deploy.add_typer(aws, name="aws")
    app.add_typer(deploy, name="deploy")


def synth(
    ctx: typer.Context,
    outdir: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write the cloud assembly.")
    ] = Path("cdk.out"),
) -> None:
    """Write a CDK cloud assembly; deploy it with `jobdeck deploy aws deploy`."""
    loaded = load(ctx)
    _write(loaded, outdir)
    from jobdeck.targets.aws.stack import stack_name

    project = loaded.catalog.project
    typer.echo(f"wrote {outdir} (stack {stack_name(project)})")
    typer.echo(f"deploy it with: cdk deploy --app {outdir}")


def _write(loaded: LoadedCatalog, outdir: Path) -> None:
    from jobdeck.catalog.load import CatalogError
    from jobdeck.targets.aws.mapping import map_catalog

    try:
        map_catalog(loaded)  # every AWS problem, before the CDK's Node.js process starts
    except CatalogError as exc:
        for diagnostic in exc.diagnostics:
            typer.echo(str(diagnostic), err=True)
        count = len(exc.diagnostics)
        typer.echo(
            f"{count} error{'s' if count != 1 else ''}: the catalog cannot run on AWS as is; "
            "nothing was written.",
            err=True,
        )
        raise typer.Exit(EXIT_INVALID) from None
    if shutil.which("node") is None:
        fail("Node.js is missing: the AWS CDK runs on it; install Node.js 20 or newer")
    # jsii warns on every start when Node.js is older than it supports; 20 works.
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    try:
        from jobdeck.targets.aws.stack import synth as write_assembly
    except ImportError as exc:
        fail(f"the AWS target needs the aws extra ({exc}); pip install 'jobdeck[aws]'")
    write_assembly(loaded, outdir)


def _stack_name(loaded: LoadedCatalog) -> str:
    """As :func:`jobdeck.targets.aws.stack.stack_name`, without starting jsii."""
    return f"jobdeck-{loaded.catalog.project}"


@contextmanager
def _assembly(loaded: LoadedCatalog, outdir: Path | None) -> Iterator[Path]:
    if outdir is not None:
        _write(loaded, outdir)
        yield outdir
        return
    with tempfile.TemporaryDirectory(prefix="jobdeck-cdk-") as folder:
        _write(loaded, Path(folder))
        yield Path(folder)


def diff(ctx: typer.Context, outdir: OutputOption = None, as_json: JsonFlag = False) -> None:
    """What a deploy would change in the deployed stack, and the cloud suspensions."""
    import json

    from jobdeck.cli import aws_state
    from jobdeck.targets.aws.deploy import compare, deployed_template

    loaded = load(ctx)
    stack = _stack_name(loaded)
    with _assembly(loaded, outdir) as assembly, aws_state.aws_errors():
        wanted = json.loads((assembly / f"{stack}.template.json").read_text())
        deployed = deployed_template(aws_state.client("cloudformation"), stack)
        changes = compare(deployed, wanted)
        held = aws_state.cloud_state(loaded).suspensions() if deployed is not None else []
    if as_json:
        print_json({**changes.json(), "suspensions": [s.json() for s in held]})
        return
    if deployed is None:
        typer.echo(f"Stack {stack} is not deployed yet: everything is new.")
    for line in changes.lines():
        typer.echo(line)
    typer.echo(aws_state.suspensions_text(held))


def deploy_stack(ctx: typer.Context, outdir: OutputOption = None) -> None:
    """Deploy the catalog to AWS with your credentials, and wait, showing progress."""
    import json

    from jobdeck.cli import aws_state
    from jobdeck.targets.aws import deploy as cloud

    loaded = load(ctx)
    stack = _stack_name(loaded)
    with aws_state.aws_errors():
        sts = aws_state.client("sts")
        account = sts.get_caller_identity()["Account"]
        where = cloud.Where(account, sts.meta.region_name)
    with _assembly(loaded, outdir) as assembly, aws_state.aws_errors():
        manifest = json.loads((assembly / "manifest.json").read_text())
        properties: dict[str, Any] = manifest["artifacts"][stack]["properties"]
        try:
            cloud.check_bootstrap(
                aws_state.client("ssm"), where, properties["requiresBootstrapStackVersion"]
            )
            typer.echo(f"publishing assets to {where.account}/{where.region}")
            cloud.publish_assets(assembly, stack, lambda role: _assumed(role, "s3", where), where)
            url = where.fill(properties["stackTemplateAssetObjectUrl"])
            bucket, _, key = url.removeprefix("s3://").partition("/")
            template_url = f"https://s3.{where.region}.amazonaws.com/{bucket}/{key}"
            cloudformation = _assumed(
                where.fill(properties["assumeRoleArn"]), "cloudformation", where
            )
            typer.echo(f"deploying stack {stack}")
            status = cloud.apply_change_set(
                cloudformation,
                stack,
                template_url,
                where.fill(properties.get("cloudFormationExecutionRoleArn", "")) or None,
                properties.get("tags") or {},
                typer.echo,
            )
        except cloud.DeployError as exc:
            fail(str(exc), EXIT_REFUSED)
        held = aws_state.hold_suspended_workers(loaded)
    typer.echo(f"{stack}: {status}")
    if held:
        typer.echo(f"kept {held} suspended worker(s) at zero tasks")


def _assumed(role: str, service: str, where: Any) -> Any:
    """A client through the CDK bootstrap's role, or the user's own credentials when the
    role cannot be assumed (as ``cdk deploy`` falls back)."""
    import boto3
    from botocore.exceptions import ClientError

    from jobdeck.cli import aws_state

    if role:
        try:
            found = aws_state.client("sts").assume_role(
                RoleArn=role, RoleSessionName="jobdeck-deploy"
            )["Credentials"]
        except ClientError:
            typer.echo(f"cannot assume {role}; using your own credentials", err=True)
        else:
            make: Any = boto3.client
            return make(
                service,
                region_name=where.region,
                aws_access_key_id=found["AccessKeyId"],
                aws_secret_access_key=found["SecretAccessKey"],
                aws_session_token=found["SessionToken"],
            )
    return aws_state.client(service)
