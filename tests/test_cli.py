"""The `lamops` command: help, lazy imports, and config errors."""

import json
import logging
import subprocess
import sys
from pathlib import Path

from helpers import ROOT
from typer.testing import CliRunner

from lamops.cli import app
from lamops.stages import STAGES

HEAVY_MODULES = (
    "torch",
    "prefect",
    "mlflow",
    "ray",
    "deepspeed",
    "transformers",
    "great_expectations",
    "docx",
)

runner = CliRunner()


def test_help_lists_every_stage_and_the_pipeline() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in (*STAGES, "pipeline", "env"):
        assert command in result.output


def test_importing_the_cli_imports_no_heavy_library() -> None:
    code = (
        f"import json, sys, lamops.cli; print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_config_error_exits_2_naming_the_field(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    for command in (*STAGES, "pipeline"):
        result = runner.invoke(app, [command, "--params", str(params), "--set", "env.max_steps=0"])
        assert result.exit_code == 2, result.output
        assert "env.max_steps" in result.output
        assert "Traceback" not in result.output


# Where Prefect's engine logs a failed task run.
TASK_RUN_LOG = logging.getLogger("prefect.task_runs")


def test_a_stage_error_under_the_pipeline_is_one_line_as_under_its_own_command(monkeypatch, tmp_path) -> None:
    """Settings a stage finds wrong at run time (collect.sources missing, an output folder that is a file)
    exit 2, and an input with nothing usable exits 1, in one line: the flow raises the stage's exception."""
    import types

    from lamops.config import ConfigError
    from lamops.stages.base import StageInputError

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    args = ["pipeline", "--params", str(tmp_path / "params.yaml"), "--stages", "collect"]
    # The records as they leave the logger (Prefect's own handlers, set up by earlier tests, want a real run).
    records: list[logging.LogRecord] = []
    collect = logging.Handler()
    collect.emit = records.append
    monkeypatch.setattr(TASK_RUN_LOG, "handlers", [collect])
    monkeypatch.setattr(TASK_RUN_LOG, "propagate", False)
    for error, code in (
        (ConfigError("collect.sources: no such folder: /x"), 2),
        (StageInputError("none"), 1),
    ):

        def failing_flow(*_, error=error, **__):
            # as Prefect's engine logs a failed task run before the flow raises the task's exception
            TASK_RUN_LOG.error("Task run failed with exception", exc_info=error)
            raise error

        monkeypatch.setitem(sys.modules, "flows.pipeline", types.SimpleNamespace(pipeline=failing_flow))
        result = runner.invoke(app, args)
        assert result.exit_code == code, result.output
        assert result.output == f"error: {error}\n"
        assert records[-1].exc_info is None  # Prefect's log of the failed run: no traceback
    bug = RuntimeError("a bug")  # anything else keeps its traceback in Prefect's log

    def buggy_flow(*_, **__):
        TASK_RUN_LOG.error("Task run failed with exception", exc_info=bug)
        raise bug

    monkeypatch.setitem(sys.modules, "flows.pipeline", types.SimpleNamespace(pipeline=buggy_flow))
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)
    assert records[-1].exc_info[1] is bug


def test_an_mlflow_tracking_uri_of_an_unknown_scheme_exits_2(monkeypatch, tmp_path) -> None:
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://x")
    for command in ("collect", "pipeline"):
        result = runner.invoke(app, [command, "--params", str(tmp_path / "params.yaml")])
        _one_line_error(result, "$MLFLOW_TRACKING_URI: no MLflow tracking store for scheme 'nosuchscheme'")


def test_unknown_profile_exits_2() -> None:
    result = runner.invoke(app, ["pipeline", "--params", str(ROOT / "params.yaml"), "--profile", "nope"])
    assert result.exit_code == 2
    assert "unknown profile 'nope'" in result.output


def test_unknown_stage_exits_2_before_prefect_starts() -> None:
    result = runner.invoke(app, ["pipeline", "--params", str(ROOT / "params.yaml"), "--stages", "nope"])
    assert result.exit_code == 2
    assert "unknown stage(s) nope" in result.output


def test_remote_commands_fail_fast_with_one_line_naming_the_endpoint(monkeypatch, tmp_path) -> None:
    import socket
    import time

    for name in ("LAMOPS_REMOTE_URL", "LAMOPS_REMOTE_ENDPOINT_URL", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    args = ["--params", str(tmp_path / "params.yaml"), "--set", "remote.url=s3://team-data/lamops"]
    args += ["--set", f"remote.endpoint_url=http://127.0.0.1:{port}"]
    for command in ("status", "push", "pull"):
        started = time.monotonic()
        result = runner.invoke(app, ["remote", command, *args])
        assert result.exit_code == 2, result.output
        assert f"127.0.0.1:{port}" in result.output and "team-data" in result.output
        assert time.monotonic() - started < 15


def _tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))
    }


def _one_line_error(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    for part in parts:
        assert part in result.output, result.output


def test_an_output_folder_that_is_the_project_or_its_file_exits_2_touching_nothing(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "params").mkdir()
    (tmp_path / "params/ci.yaml").write_text((ROOT / "params/ci.yaml").read_text())
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "mlflow.db").write_bytes(b"SQLite format 3\0")
    before = _tree(tmp_path)
    for out_dir in ("params.yaml", ".", "..", "mlflow.db", "params"):
        for command in ("collect", "pipeline"):
            args = [command, "--params", str(tmp_path / "params.yaml"), "--set", f"collect.out_dir={out_dir}"]
            _one_line_error(runner.invoke(app, args), "collect.out_dir")
            assert _tree(tmp_path) == before, out_dir


def test_params_that_cannot_be_decoded_exit_2_naming_the_file_or_field(tmp_path: Path) -> None:
    text = (ROOT / "params.yaml").read_text()
    (tmp_path / "latin1.yaml").write_bytes(("# caf\u00e9\n" + text).encode("latin-1"))
    (tmp_path / "utf16.yaml").write_bytes(text.encode("utf-16"))
    (tmp_path / "params.yaml").write_text(text)
    params = ["--params", str(tmp_path / "params.yaml")]
    cases = [
        (["--params", str(tmp_path / "latin1.yaml")], "latin1.yaml: not UTF-8"),
        (["--params", str(tmp_path / "utf16.yaml")], "utf16.yaml: not UTF-8"),
        (["--params", str(tmp_path)], "is a folder, not a params file"),
        ([*params, "--set", "tracking.uri=nosuchscheme://x"], "tracking.uri"),
        ([*params, "--set", "ray.num_cpus=-1"], "ray.num_cpus"),
        ([*params, "--set", "ray.num_cpus=0"], "ray.num_cpus"),
        ([*params, "--profile", "../params"], "profile '../params'"),
    ]
    for args, part in cases:
        for command in ("collect", "pipeline"):
            _one_line_error(runner.invoke(app, [command, *args]), part)


def test_env_play_without_a_template_plays_the_family_on_its_first_applicable_template() -> None:
    from lamops.env.families import applicable_templates

    params = ["--params", str(ROOT / "params.yaml")]
    first = applicable_templates("table_style")[0]
    result = runner.invoke(app, ["env", "play", "--family", "table_style", *params])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"template: {first} (the first table_style applies to;")
    assert "verdict: yes" in result.output

    played = json.loads(
        runner.invoke(app, ["env", "play", "--family", "table_style", "--json", *params]).output
    )
    assert played["task"]["template"] == first and played["verdict"]["complete"] == "yes"

    unknown = runner.invoke(app, ["env", "play", "--family", "nope", *params])
    assert unknown.exit_code == 2 and "unknown task family 'nope'" in unknown.output
    # composite tasks are built by composing families, never played on their own
    composite = runner.invoke(app, ["env", "play", "--family", "composite", *params])
    assert composite.exit_code == 2 and "applies to no template" in composite.output
