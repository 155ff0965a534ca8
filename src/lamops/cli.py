"""The `lamops` command: one subcommand per stage, `lamops pipeline`, and `lamops env`.

Heavy libraries (torch, prefect, mlflow, ray, ...) are imported inside the commands, never here, so that
`lamops --help` answers at once; tests/test_cli.py checks it.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from lamops.stages import STAGES, get_stage, select_stages

if TYPE_CHECKING:
    from lamops.config import Config

app = typer.Typer(
    help="lamops: train Large Action Models as a reproducible pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# The env author adds `lamops env families` and `lamops env play` here.
env_app = typer.Typer(help="The built-in Word-like environment", no_args_is_help=True)
app.add_typer(env_app, name="env")

ParamsOption = Annotated[
    Path, typer.Option("--params", help="Params file; its folder is the project root.", metavar="PATH")
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="Profile params/NAME.yaml, merged over the params file (default: $LAMOPS_PROFILE, else tiny).",
        metavar="NAME",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override a parameter, value in YAML; repeatable.", metavar="SECTION.KEY=VALUE"
    ),
]


def _load(params: Path, profile: str | None, overrides: list[str] | None) -> Config:
    """The validated config, or a one-line error and exit status 2."""
    from lamops.config import ConfigError, load_config

    try:
        return load_config(params, profile, overrides or ())
    except ConfigError as err:
        _fail(str(err))


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _stage_help(name: str) -> str:
    """The first line of the stage module's docstring, read without importing the module and its libraries."""
    spec = importlib.util.find_spec(f"lamops.stages.{name}")
    docstring = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or f"Run stage {name}."
    return docstring.splitlines()[0]


def _add_stage_command(name: str) -> None:
    def command(
        params: ParamsOption = Path("params.yaml"),
        profile: ProfileOption = None,
        overrides: SetOption = None,
    ) -> None:
        cfg = _load(params, profile, overrides)
        result = get_stage(name)(cfg)
        typer.echo(result.model_dump_json(indent=2))

    app.command(name=name, help=_stage_help(name))(command)


for _stage in STAGES:
    _add_stage_command(_stage)


@app.command()
def pipeline(
    stages: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated stages to run, in pipeline order (default: pipeline.stages).", metavar="A,B"
        ),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    profile: ProfileOption = None,
    overrides: SetOption = None,
) -> None:
    """Run the stages as the Prefect flow `lamops-pipeline` (ephemeral mode unless PREFECT_API_URL is set)."""
    _load(params, profile, overrides)  # fail fast, before Prefect spends seconds starting
    selected = None
    if stages is not None:
        try:
            selected = list(select_stages(s.strip() for s in stages.split(",") if s.strip()))
        except ValueError as err:
            _fail(str(err))
    # flows/ is not installed: it lives in the project root, the folder of the params file.
    root = params.resolve().parent
    sys.path.insert(0, str(root))
    from flows.pipeline import pipeline as pipeline_flow

    results = pipeline_flow(
        params=str(params.resolve()), profile=profile, stages=selected, overrides=overrides
    )
    typer.echo(json.dumps(results, indent=2))
