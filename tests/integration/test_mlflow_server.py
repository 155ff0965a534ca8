"""The `ci` pipeline against a team MLflow server: PostgreSQL backend store, artifacts proxied to S3 (moto),
started by mlflow/dev-postgres.sh and mlflow/start-server.sh as a deployment would be.

One pipeline run (`lamops pipeline --profile ci`, a subprocess with recognisable fake AWS and LLM keys in its
environment) is shared by every test: the phases and registered models read back through the client, the
artifacts in the bucket, `models:/lam@champion`, a scan for the keys in everything MLflow holds and in every
log, and the experiment page in headless Chromium (Debian's `chromium`). The stack and the browser check are
bench/mlflow_ui.py's, so the benchmark and this test exercise the same code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from bench.mlflow_ui import (
    BUCKET,
    COMPARED_METRICS,
    EVALUATED,
    EXPERIMENT,
    PHASE_RUNS,
    PREFIX,
    PipelineRun,
    Stack,
    chromium,
    dump_dom,
    experiment_url,
    missing_runs,
    phase_runs,
    run_ci_pipeline,
    start_stack,
)
from lamops.stages.evaluate import compare_url

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.xdist_group("mlflow_server"),  # one stack and one pipeline run, on one worker
    pytest.mark.timeout(1800),
]

PHASE_MODELS = ("lam1", "lam2", "lam3", "lam4", "reward_model")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")) and not shutil.which("pg_ctl"):
        pytest.fail(
            "PostgreSQL server binaries missing: apt-get install -y --no-install-recommends postgresql"
        )
    with start_stack() as running:
        print(f"\nmlflow stack start-up: {running.startup_s}", file=sys.stderr)
        yield running


@pytest.fixture(scope="module")
def pipeline(stack: Stack) -> PipelineRun:
    """`lamops pipeline --profile ci` once, against the server, with the fake keys in its environment."""
    run = run_ci_pipeline(stack)
    print(f"\nci_pipeline_wall_s (MLflow server mode): {run.seconds:.1f}", file=sys.stderr)
    assert run.returncode == 0, f"lamops pipeline failed ({run.seconds:.0f} s):\n{run.stderr[-6000:]}"
    return run


@pytest.fixture(scope="module")
def experiment_id(stack: Stack, pipeline: PipelineRun) -> str:
    from mlflow import MlflowClient

    experiment = MlflowClient(stack.uri).get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, f"no experiment {EXPERIMENT!r} on {stack.uri}"
    return experiment.experiment_id


def all_runs(client, experiment_id: str) -> list:
    return client.search_runs([experiment_id], max_results=1000)


def bucket_keys(stack: Stack) -> list[str]:
    pages = stack.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def test_phases_runs_models_and_artifacts_are_on_the_server(
    stack: Stack, pipeline: PipelineRun, experiment_id: str
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(stack.uri)
    runs = all_runs(client, experiment_id)
    by_name: dict[str, list] = {}
    for run in runs:
        by_name.setdefault(run.info.run_name, []).append(run)
    missing = [name for name in ("pipeline", *PHASE_RUNS, *EVALUATED) if name not in by_name]
    assert not missing, f"runs missing on the server: {missing}; found {sorted(by_name)}"
    unfinished = [(r.info.run_name, r.info.status) for r in runs if r.info.status != "FINISHED"]
    assert not unfinished, unfinished

    parent = by_name["pipeline"][0].info.run_id
    for name in PHASE_RUNS:
        assert by_name[name][0].data.tags.get("mlflow.parentRunId") == parent, f"{name}: not under pipeline"
    evaluate = by_name["evaluate"][0].info.run_id
    for phase in EVALUATED:
        run = by_name[phase][0]
        assert run.data.tags.get("mlflow.parentRunId") == evaluate, f"{phase}: not under evaluate"
        assert any(key.startswith(("offline.", "online.")) for key in run.data.metrics), run.data.metrics

    registered = {model.name for model in client.search_registered_models()}
    assert {*PHASE_MODELS, "lam"} <= registered, registered
    for name in PHASE_MODELS:
        versions = client.search_model_versions(f"name = '{name}'")
        assert versions and versions[0].tags.get("lamops.model_sha"), f"{name}: no version with lineage tags"

    # The server's artifact store is the bucket: the weights are there, not on the client's disk.
    keys = [key for key in bucket_keys(stack) if key.startswith(f"{PREFIX}/")]
    assert any(key.endswith(".safetensors") for key in keys), keys[:20]
    assert any(key.endswith("curves.png") for key in keys), keys[:20]
    assert not (pipeline.project / "mlartifacts").exists(), "artifacts went to the client's disk"


def test_champion_alias_resolves_and_loads(
    stack: Stack, pipeline: PipelineRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow import MlflowClient

    champion = MlflowClient(stack.uri).get_model_version_by_alias("lam", "champion")
    assert champion.tags.get("lamops.decision") == "passed", champion.tags
    # `models:/` URIs resolve through the process-wide tracking and registry URIs, whatever is passed.
    # Both setters also export their environment variable; monkeypatch restores both after the test, and the
    # registry URI goes back to None (following the tracking URI): pinning it to the value read before would
    # send every later registration in this worker to another test's store.
    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stack.uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", stack.uri)
    mlflow.set_tracking_uri(stack.uri)
    mlflow.set_registry_uri(stack.uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts("models:/lam@champion", dst_path=str(tmp_path)))
    finally:
        mlflow.set_tracking_uri(previous)
        mlflow.set_registry_uri(None)
    assert (local / "MLmodel").is_file(), sorted(local.rglob("*"))
    assert list(local.rglob("config.json")) and list(local.rglob("*.safetensors")), sorted(local.rglob("*"))


def test_no_secret_in_mlflow_or_logs(stack: Stack, pipeline: PipelineRun, experiment_id: str) -> None:
    """Every param, tag and dataset input of every run, every model version's and logged model's tags, every
    object in the artifact bucket, a dump of the whole backend database, the pipeline's output and the
    server's log: none holds the AWS keys or the LLM key the processes had in their environment."""
    from mlflow import MlflowClient

    client = MlflowClient(stack.uri)
    texts: dict[str, bytes] = {}
    for run in all_runs(client, experiment_id):
        fields = [*run.data.params.items(), *run.data.tags.items()]
        fields += [(d.dataset.name, d.dataset.source, d.dataset.profile) for d in run.inputs.dataset_inputs]
        texts[f"run {run.info.run_name} ({run.info.run_id})"] = repr(fields).encode()
    for model in client.search_registered_models():
        texts[f"registered model {model.name}"] = repr(model.tags).encode()
        for version in client.search_model_versions(f"name = '{model.name}'"):
            texts[f"{model.name} v{version.version}"] = repr([version.tags, version.source]).encode()
    for logged in client.search_logged_models([experiment_id]):
        texts[f"logged model {logged.model_id}"] = repr([logged.params, logged.tags]).encode()
    s3 = stack.s3()
    for key in bucket_keys(stack):
        texts[f"s3://{BUCKET}/{key}"] = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    texts["backend database (pg_dump)"] = pg_dump(stack.backend_uri)
    texts["pipeline stdout"] = pipeline.stdout.encode()
    texts["pipeline stderr"] = pipeline.stderr.encode()
    texts["mlflow server log"] = stack.server_log.read_bytes()
    assert sum(1 for where in texts if where.startswith("s3://")) > 20, "too few artifacts to trust the scan"
    assert all(stack.secrets.values())

    # The scan itself finds a planted key (bytes, as artifacts are read).
    assert find_leaks({"canary": b"x" + stack.secrets["LLM_KEY"].encode()}, stack.secrets) == [
        "LLM_KEY in canary"
    ]
    leaks = find_leaks(texts, stack.secrets)
    assert not leaks, leaks


def find_leaks(texts: dict[str, bytes], secrets: dict[str, str]) -> list[str]:
    return [
        f"{name} in {where}"
        for where, data in texts.items()
        for name, value in secrets.items()
        if value.encode() in data
    ]


def pg_dump(backend_uri: str) -> bytes:
    """The whole backend database as SQL text: every table MLflow writes, whatever the client API shows."""
    url = urlparse(backend_uri)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))
    command = str(found[-1]) if found else "pg_dump"
    return subprocess.run(
        [command, "-h", url.hostname, "-p", str(url.port), "-U", url.username, url.path.lstrip("/")],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
    ).stdout


def test_experiment_page_lists_every_phase_in_chromium(
    stack: Stack, pipeline: PipelineRun, experiment_id: str
) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip(
            "the UI check needs Debian's chromium: apt-get install -y --no-install-recommends chromium"
        )
    dom = dump_dom(browser, experiment_url(stack.uri, experiment_id), stack.workdir / "chromium")
    missing = missing_runs(dom)
    assert not missing, f"the experiment page does not list {missing}"
    # The page the evaluate run's description links: LAM1-LAM4 and the expert, metric by metric.
    runs = phase_runs(stack.uri, experiment_id)
    assert list(runs) == list(EVALUATED)
    url = f"{stack.uri}/{compare_url(experiment_id, list(runs.values()))}"
    dom = dump_dom(browser, url, stack.workdir / "chromium")
    assert not missing_runs(dom, EVALUATED), f"the compare page does not show {missing_runs(dom, EVALUATED)}"
    assert all(key in dom for key in COMPARED_METRICS), [k for k in COMPARED_METRICS if k not in dom]
