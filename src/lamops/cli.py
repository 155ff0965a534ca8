"""The `lamops` command: one subcommand per stage, `lamops pipeline`, and `lamops env`.

Heavy libraries (torch, prefect, mlflow, ray, ...) are imported inside the commands, never here, so that
`lamops --help` answers at once; tests/test_cli.py checks it.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from lamops.phases import select_stages
from lamops.stages import STAGES, get_stage

if TYPE_CHECKING:
    from lamops.config import Config

app = typer.Typer(
    help="lamops: train Large Action Models as a reproducible pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
env_app = typer.Typer(help="The built-in Word-like environment", no_args_is_help=True)
app.add_typer(env_app, name="env")
ufo_app = typer.Typer(
    help="Interoperate with UFO's dataflow (Windows): import its results, export task-plan pairs to it.",
    no_args_is_help=True,
)
app.add_typer(ufo_app, name="ufo")
remote_app = typer.Typer(
    help="The DVC remote on S3 (params `remote` section, environment over it): set up, push, pull, status.",
    no_args_is_help=True,
)
app.add_typer(remote_app, name="remote")
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

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


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Errors a stage finds at run time, as one line: wrong settings (exit 2, as at load time) and an input
    with nothing usable (exit 1); anything else is a bug and keeps its traceback."""
    from lamops.config import ConfigError
    from lamops.io import UnsafeOutput
    from lamops.stages.base import StageInputError
    from lamops.tracking import TrackingUnavailable

    settings_errors = (TrackingUnavailable, ConfigError, UnsafeOutput)
    quiet = _NoTraceback((*settings_errors, StageInputError))
    loggers = [logging.getLogger(name) for name in _PREFECT_RUN_LOGGERS]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    except settings_errors as err:  # wrong settings found at run time
        _fail(str(err))
    except StageInputError as err:  # the input, not the settings: exit 1, still one line
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


# Where Prefect logs a failed task or flow run, with the exception's traceback.
_PREFECT_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


class _NoTraceback(logging.Filter):
    """Drops the traceback from a log record of one of `types` (errors lamops reports as one line itself):
    Prefect logs a failed run's exception with its traceback before the flow raises it; a bug keeps it."""

    def __init__(self, types: tuple[type[BaseException], ...]):
        super().__init__()
        self.types = types

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, self.types):
            record.exc_info, record.exc_text = None, None
        return True


def _check_tracking(cfg: Config) -> None:
    """Fail in seconds, as one line, when the MLflow server or the S3 artifact store is down."""
    from lamops.tracking import TrackingUnavailable, check_reachable

    try:
        check_reachable(cfg)
    except TrackingUnavailable as err:
        _fail(str(err))


def _import_flows(params: Path) -> None:
    """Make `flows/` importable: it is not installed but lives in a project root, either the folder of the
    params file or the checkout lamops is installed from (a project elsewhere holds only params)."""
    import lamops

    for root in (Path(lamops.__file__).resolve().parents[2], params.resolve().parent):
        if (root / "flows" / "pipeline.py").is_file() and str(root) not in sys.path:
            sys.path.insert(0, str(root))


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
        with _one_line_errors():
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
    force: Annotated[
        bool,
        typer.Option("--force", help="Run every selected stage, even one whose inputs did not change."),
    ] = False,
    params: ParamsOption = Path("params.yaml"),
    profile: ProfileOption = None,
    overrides: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the stages as the Prefect flow `lamops-pipeline` (ephemeral mode unless PREFECT_API_URL is set).

    Ends by printing each stage's result, the phase table, where the MLflow UI is and the champion.
    """
    cfg = _load(params, profile, overrides)  # fail fast, before Prefect spends seconds starting
    _check_tracking(cfg)
    selected = None
    if stages is not None:
        try:
            selected = list(select_stages(s.strip() for s in stages.split(",") if s.strip()))
        except ValueError as err:
            _fail(str(err))
    _import_flows(params)
    from flows.pipeline import pipeline as pipeline_flow

    with _one_line_errors():  # a stage's exception is what the flow raises
        results = pipeline_flow(
            params=str(params.resolve()), profile=profile, stages=selected, overrides=overrides, force=force
        )
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    from lamops.summary import render

    typer.echo(render(cfg, results))


@app.command("ui")
def ui(
    port: Annotated[int, typer.Option(help="Port of the UI.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    params: ParamsOption = Path("params.yaml"),
    profile: ProfileOption = None,
    overrides: SetOption = None,
) -> None:
    """Serve the MLflow UI over the configured tracking store (with a tracking server: print its URL)."""
    import os

    from lamops.tracking import tracking_uri

    cfg = _load(params, profile, overrides)
    uri = tracking_uri(cfg)
    if uri.startswith(("http://", "https://")):
        typer.echo(f"The runs are on the tracking server {uri}: open it in a browser.")
        return
    typer.echo(f"MLflow UI over {uri}: http://{host}:{port} (Ctrl-C stops it)")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host]
    os.execv(sys.executable, [*command, "--port", str(port)])


TargetsArgument = Annotated[
    list[str] | None, typer.Argument(help="Stages to transfer (default: every stage in dvc.lock).")
]
JobsOption = Annotated[int | None, typer.Option("--jobs", help="Parallel transfers (default: DVC's).")]


def _remote_call(action, params: Path, profile: str | None, overrides: list[str] | None, *args) -> None:
    from lamops.remote import RemoteError

    cfg = _load(params, profile, overrides)
    try:
        typer.echo(action(cfg, *args))
    except RemoteError as err:
        _fail(str(err))


@remote_app.command("setup")
def remote_setup(
    params: ParamsOption = Path("params.yaml"), profile: ProfileOption = None, overrides: SetOption = None
) -> None:
    """Write the remote into .dvc/config.local as DVC's default remote (plain `dvc push`/`pull` use it)."""
    from lamops.remote import configure

    _remote_call(configure, params, profile, overrides)


@remote_app.command("push")
def remote_push(
    targets: TargetsArgument = None,
    jobs: JobsOption = None,
    params: ParamsOption = Path("params.yaml"),
    profile: ProfileOption = None,
    overrides: SetOption = None,
) -> None:
    """Check the bucket answers within seconds, then `dvc push` the stages' outputs."""
    from lamops.remote import push

    _remote_call(push, params, profile, overrides, targets or (), jobs)


@remote_app.command("pull")
def remote_pull(
    targets: TargetsArgument = None,
    jobs: JobsOption = None,
    params: ParamsOption = Path("params.yaml"),
    profile: ProfileOption = None,
    overrides: SetOption = None,
) -> None:
    """Check the bucket answers within seconds, then `dvc pull` the outputs of the stages in dvc.lock."""
    from lamops.remote import pull

    _remote_call(pull, params, profile, overrides, targets or (), jobs)


@remote_app.command("status")
def remote_status(
    params: ParamsOption = Path("params.yaml"), profile: ProfileOption = None, overrides: SetOption = None
) -> None:
    """What a push would send and a pull would fetch (`dvc status --cloud`)."""
    from lamops.remote import status

    _remote_call(status, params, profile, overrides)


@env_app.command("families")
def env_families(as_json: JsonOption = False) -> None:
    """List the task families: name, category, the templates each applies to, and what it asks."""
    from lamops.env.families import FAMILIES, applicable_templates

    rows = [
        {
            "name": f.name,
            "category": f.category,
            "description": f.description,
            "templates": applicable_templates(f.name),
        }
        for f in FAMILIES.values()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['name']:<24} {r['category']:<22} {r['description']}")
    typer.echo(f"{len(rows)} families in {len({r['category'] for r in rows})} categories")


@env_app.command("play")
def env_play(
    family: Annotated[str, typer.Option(help="Task family (see `lamops env families`).")],
    template: Annotated[
        str | None,
        typer.Option(help="Template document, e.g. plain_text (default: the family's first applicable one)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampled task.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Folder to save the final .docx in.", metavar="DIR")
    ] = None,
    as_json: JsonOption = False,
    params: ParamsOption = Path("params.yaml"),
    profile: ProfileOption = None,
    overrides: SetOption = None,
) -> None:
    """Run the built-in expert on one sampled task, showing each step and the verifier's verdict."""
    from lamops.agents.expert import ExpertAgent
    from lamops.env.families import applicable_templates, sample_task
    from lamops.env.templates import TEMPLATES
    from lamops.env.word import WordEnv

    cfg = _load(params, profile, overrides)
    if template is None:  # the first template the family applies to (`lamops env families` lists them)
        try:
            applicable = applicable_templates(family)
        except ValueError as err:
            _fail(str(err))
        if not applicable:
            _fail(f"family {family!r} applies to no template; known: {', '.join(TEMPLATES)}")
        template = applicable[0]
        if not as_json:
            typer.echo(f"template: {template} (the first {family} applies to; choose with --template)")
    if template not in TEMPLATES:
        _fail(f"unknown template {template!r}; known: {', '.join(TEMPLATES)}")
    try:
        task = sample_task(family, template, seed)
    except ValueError as err:
        _fail(str(err))
    if task is None:
        _fail(f"family {family!r} does not apply to template {template!r}")
    env = WordEnv(max_steps=cfg.env.max_steps, view=cfg.env.view())
    try:
        traj = ExpertAgent().run(env, task, out_dir=out)
    finally:
        env.close()
    if as_json:
        typer.echo(traj.model_dump_json(indent=2, exclude={"steps": {"__all__": {"prompt"}}}))
        return
    typer.echo(f"request: {task.request}")
    for s in traj.steps:
        target = f" [{s.control_label}] {s.control_name}" if s.control_name else ""
        typer.echo(
            f"  {s.step}. {s.function}{target} {json.dumps(s.args)} -> "
            f"{'ok' if s.ok else 'error'}: {s.result} ({s.latency * 1000:.1f} ms)"
        )
    if traj.error:
        typer.echo(f"stopped: {traj.error}")
    typer.echo(f"verdict: {traj.verdict.complete} ({traj.verdict.reason})")
    if traj.final_document:
        typer.echo(f"document: {traj.final_document}")


@ufo_app.command("import")
def ufo_import(
    src: Annotated[Path, typer.Argument(help="UFO dataflow results: a folder (read recursively) or a file.")],
    out: Annotated[
        Path, typer.Option(help="Folder for pairs/tasks/outcomes/rejected.jsonl.", metavar="DIR")
    ] = Path("data/ufo_import"),
) -> None:
    """Read UFO dataflow result JSON files into lamops records; malformed files are rejected with a reason."""
    from lamops.data.ufo import import_dir
    from lamops.io import UnsafeOutput, check_replaceable

    if not src.exists() and not src.is_symlink():
        _fail(f"{src}: no such file or folder")
    try:
        check_replaceable(out)  # before the import's work, not after it
        result = import_dir(src)
        paths = result.write(out)
    except UnsafeOutput as err:
        _fail(str(err))
    typer.echo(result.summary())
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")


@ufo_app.command("export")
def ufo_export(
    pairs: Annotated[
        Path, typer.Argument(help="Task-plan pairs (JSON Lines), e.g. data/task_plans/collected/pairs.jsonl.")
    ],
    out: Annotated[Path, typer.Option(help="Folder for UFO's task files.", metavar="DIR")],
    app_name: Annotated[str, typer.Option("--app", help="UFO's app name.")] = "word",
    shard_size: Annotated[
        int | None, typer.Option(help="Task files per part-NNNN folder (one batch per machine).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
) -> None:
    """Write task-plan pairs in UFO's dataflow input format ({app, unique_id, task, refined_steps})."""
    from lamops.data.ufo_export import export_pairs, read_pairs_jsonl

    if not pairs.is_file():
        _fail(f"{pairs}: no such file")
    try:
        files = export_pairs(
            read_pairs_jsonl(pairs), out, app=app_name, shard_size=shard_size, overwrite=overwrite
        )
    except ValueError as err:
        _fail(str(err))
    parts = sorted({f.parent for f in files})
    typer.echo(
        f"wrote {len(files)} UFO task file(s) to {out}"
        + (f" in {len(parts)} part folder(s)" if shard_size else "")
    )
    target = parts[0] if shard_size and parts else out
    typer.echo(f"run on Windows: python -m dataflow batch dataflow {target}")


@app.command("agent")
def agent_command(
    request: Annotated[str, typer.Option(help="What to do to the document, in words.", metavar="TEXT")],
    doc: Annotated[
        Path, typer.Option(help="The .docx to work on; read once, never changed.", metavar="IN.docx")
    ],
    out: Annotated[Path, typer.Option(help="Where to write the edited document.", metavar="OUT.docx")],
    model: Annotated[
        str,
        typer.Option(
            help="models:/NAME/VERSION or models:/NAME@ALIAS (the params' MLflow registry), or a local "
            "save_pretrained folder.",
            metavar="URI_OR_DIR",
        ),
    ] = "models:/lam@champion",
    max_steps: Annotated[
        int | None,
        typer.Option("--max-steps", min=1, help="Step limit (default: env.max_steps).", metavar="N"),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Steps go to stderr; the trajectory is printed as JSON at the end.")
    ] = False,
    params: ParamsOption = Path("params.yaml"),
    profile: ProfileOption = None,
    overrides: SetOption = None,
) -> None:
    """Run a LAM on your own .docx: each step as it happens, then the result written to --out."""
    from lamops.agents.user_doc import agent_max_len, run_on_document, user_task
    from lamops.env.user_docx import (
        UserDocumentError,
        check_output,
        inspect_document,
        read_document,
        save_document,
    )
    from lamops.registry.loading import ModelUnavailable, load_model, load_plans

    cfg = _load(params, profile, overrides)
    try:
        user_task(request)
        check_output(doc, out, overwrite=overwrite)
        data = read_document(doc)
        report = inspect_document(data, str(doc))
    except UserDocumentError as err:
        _fail(str(err))
    try:
        lm, tokenizer = load_model(model, cfg)
        plans = load_plans(model, cfg)
    except ModelUnavailable as err:
        _fail(str(err))

    from lamops.agents.lam import AgentConfig, LAMAgent

    config = AgentConfig(
        max_len=agent_max_len(cfg),
        **cfg.env.view().model_dump(),
        max_steps=max_steps or cfg.env.max_steps,
        batch_size=1,
        temperature=0,
    )
    show = (lambda line: typer.echo(line, err=True)) if as_json else typer.echo
    show(f"request: {' '.join(request.split())}")
    show(f"document: {doc}")
    show(f"model: {model}")
    show(report.summary())

    def on_step(task, s, timing) -> None:
        target = f" [{s.control_label}] {s.control_name}" if s.control_name else ""
        args = json.dumps(s.args, ensure_ascii=False)
        show(
            f"  {s.step}. {s.function or '(unparsed action)'}{target} {args} -> "
            f"{'ok' if s.ok else 'error'}: {s.result} ({timing.decode_s + timing.env_s:.2f} s)"
        )

    try:
        run = run_on_document(LAMAgent(lm, tokenizer, config, plans), data, request, on_step=on_step)
        save_document(run.document, out, overwrite=overwrite)
    except UserDocumentError as err:
        _fail(str(err))
    steps = run.trajectory.steps
    status = (
        f"FINISH after {len(steps)} step(s)"
        if run.finished
        else f"step limit: stopped after {len(steps)} step(s) without FINISH"
    )
    show(f"status: {status}")
    show(f"saved: {out}")
    show("verdict: no verifier for a user document (it has no goal predicate)")
    if as_json:
        result = {
            "request": run.trajectory.task.request,
            "document": str(doc),
            "out": str(out),
            "model": model,
            "not_shown": report.counts,
            "status": "FINISH" if run.finished else "step_limit",
            "error": run.trajectory.error,
            "seconds": run.trajectory.seconds,
            "steps": [s.model_dump(mode="json", exclude={"prompt"}) for s in steps],
        }
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
