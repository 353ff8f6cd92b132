"""``jobdeck deploy aws synth -o DIR``: the catalog as a CDK cloud assembly (SPEC section 8)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from jobdeck.cli.context import EXIT_INVALID, fail, load


def register(app: typer.Typer) -> None:
    deploy = typer.Typer(help="Deploy the catalog to other infrastructure.", no_args_is_help=True)
    aws = typer.Typer(help="The AWS target (needs jobdeck[aws] and Node.js).", no_args_is_help=True)
    aws.command("synth")(synth)
    deploy.add_typer(aws, name="aws")
    app.add_typer(deploy, name="deploy")


def synth(
    ctx: typer.Context,
    outdir: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write the cloud assembly.")
    ] = Path("cdk.out"),
) -> None:
    """Write a CDK cloud assembly; deploy it with `cdk deploy --app DIR`."""
    from jobdeck.catalog.load import CatalogError

    loaded = load(ctx)
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
    # jsii warns on every start when Node.js is older than it supports; 20 works.
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    try:
        from jobdeck.targets.aws.stack import stack_name
        from jobdeck.targets.aws.stack import synth as write_assembly
    except ImportError as exc:
        fail(f"the AWS target needs the aws extra ({exc}); pip install 'jobdeck[aws]'")
    write_assembly(loaded, outdir)
    project = loaded.catalog.project
    typer.echo(f"wrote {outdir} (stack {stack_name(project)})")
    typer.echo(f"deploy it with: cdk deploy --app {outdir}")
