"""The Prefect flows run the pipeline on a temporary local Prefect server, as ephemeral mode does;
prefect.yaml and the work pools' job templates agree with them."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import ROOT
from test_dvc_repro import make_project, run, set_params

from flows.pipeline import DATA_STAGES, EVALUATE_PROMOTE_STAGES, SUBFLOWS, TRAIN_STAGES, data, pipeline
from lamops.config import load_config
from lamops.stages import STAGES
from tasks.stages import stage_task


def mlflow_runs(root: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return client.search_runs(client.get_experiment_by_name("lamops").experiment_id)


def not_recorded(caplog) -> list[str]:
    """What the flows said about not recording their outputs in DVC."""
    return [r.getMessage() for r in caplog.records if "not recorded in DVC" in r.getMessage()]


@pytest.mark.usefixtures("prefect_server")
def test_pipeline_flow_runs_the_templates_stage(tmp_path: Path, caplog) -> None:
    from mlflow.tracking import MlflowClient

    shutil.copy(ROOT / "params.yaml", tmp_path)
    out = tmp_path / "library"

    with caplog.at_level("INFO"):
        results = pipeline(
            params=str(tmp_path / "params.yaml"), stages=["templates"], overrides=[f"templates.out_dir={out}"]
        )

    assert [result["stage"] for result in results] == ["templates"]
    assert (out / "index.json").is_file()
    assert len(list(out.glob("*.docx"))) >= 8
    # The flow's MLflow run, with the stage's run nested under it.
    runs = mlflow_runs(tmp_path)
    assert {r.info.run_name for r in runs} == {"pipeline"}
    assert runs[0].info.status == "FINISHED"
    # A model-training experiment (MLflow 3's experiment kind): the UI opens it on its runs.
    experiment = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_experiment_by_name("lamops")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # dvc.lock describes params.yaml alone: said once, by the parent flow, not again by its sub-flow.
    assert [line.split(": ", 1)[1] for line in not_recorded(caplog)] == [
        f"--set templates.out_dir={out} (dvc.lock describes params.yaml alone); the flow keeps its own "
        "stamps in .lamops/stages/tiny/"
    ]


@pytest.mark.usefixtures("prefect_server")
def test_a_rerun_skips_an_unchanged_stage_unless_forced_and_a_sub_flow_opens_its_own_pipeline_run(
    tmp_path: Path, caplog
) -> None:
    shutil.copy(ROOT / "params.yaml", tmp_path)
    shutil.copy(ROOT / "dvc.yaml", tmp_path)  # a project with a dvc.yaml but no DVC repository
    args = {"params": str(tmp_path / "params.yaml"), "stages": ["templates"]}

    with caplog.at_level("INFO"):
        first = pipeline(**args)
        again = data(**args)
        forced = pipeline(**args, force=True)

    assert first[0]["message"].startswith("built ")
    assert again[0]["stage"] == "templates"
    assert again[0]["message"].startswith("unchanged since ") and "skipped" in again[0]["message"]
    assert forced[0]["message"].startswith("built ")
    # Three flow runs, three pipeline runs: the sub-flow run on its own opened one too.
    assert [r.info.run_name for r in mlflow_runs(tmp_path)] == ["pipeline"] * 3
    # Once per flow run (the sub-flow run on its own says it too), and nothing recorded.
    said = not_recorded(caplog)
    assert len(said) == 3, said
    assert all("is not in a DVC repository (no .dvc folder)" in line for line in said), said
    assert not (tmp_path / "dvc.lock").exists()


@pytest.mark.usefixtures("prefect_server")
def test_the_flow_records_its_stages_in_dvc_so_dvc_status_stays_clean(tmp_path: Path, caplog) -> None:
    """On params.yaml alone (small sources in it: no profile, no overrides needed) each stage the flow runs
    or skips is committed to dvc.lock and the DVC cache as `dvc repro` would: `dvc status` is clean and
    `dvc repro` does nothing; after a param change and a rerun of the flow, clean again. Two flow runs of
    the cheapest stages (~20-40 s on a loaded 2-core runner, most of it `sources` and the dvc commands)."""
    project = make_project(tmp_path, ["templates", "sources"])
    args = {"params": str(project / "params.yaml"), "stages": ["templates", "sources"]}
    stages = ["templates", "sources"]

    pipeline(**args)
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(stages)
    assert "Data and pipelines are up to date" in run(["dvc", "status", *stages], project)
    assert "Data and pipelines are up to date" in run(["dvc", "repro", *stages], project)

    # The outs are in the DVC cache (a folder out: its `.dir` listing and every file it names).
    cache = project / ".dvc" / "cache" / "files" / "md5"
    for stage in stages:
        (out,) = lock[stage]["outs"]
        listing = cache / out["md5"][:2] / out["md5"][2:]
        assert all((cache / f["md5"][:2] / f["md5"][2:]).is_file() for f in json.loads(listing.read_text()))

    # One param changed (templates' only one: a cheap rerun): the flow reruns templates, skips sources, and
    # records both again.
    set_params(project, {"templates.out_dir": "data/library"})
    caplog.clear()
    with caplog.at_level("INFO"):
        results = pipeline(**args)
    recorded = [r.getMessage() for r in caplog.records if "recorded in dvc.lock" in r.getMessage()]
    assert [line.split(":")[0] for line in recorded] == ["stage templates", "stage sources"], recorded
    assert results[0]["message"].startswith("built ")
    assert results[1]["message"].startswith("unchanged since ")  # skipped, recorded all the same
    after = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert after["templates"]["outs"][0]["path"] == "data/library"
    assert after["sources"] == lock["sources"]
    assert "Data and pipelines are up to date" in run(["dvc", "status", *stages], project)


@pytest.mark.usefixtures("prefect_server")
def test_a_sub_flow_refuses_stages_of_another_sub_flow(tmp_path: Path) -> None:
    shutil.copy(ROOT / "params.yaml", tmp_path)
    with pytest.raises(ValueError, match="lamops-data runs templates, .*; got imitate: run lamops-pipeline"):
        data(params=str(tmp_path / "params.yaml"), stages=["templates", "imitate"])


def test_the_sub_flows_cover_every_stage_once_in_pipeline_order() -> None:
    assert (*DATA_STAGES, *TRAIN_STAGES, *EVALUATE_PROMOTE_STAGES) == STAGES
    assert [group for _, group in SUBFLOWS] == [DATA_STAGES, TRAIN_STAGES, EVALUATE_PROMOTE_STAGES]
    assert [flow.name for flow, _ in SUBFLOWS] == ["lamops-data", "lamops-train", "lamops-evaluate-promote"]


def test_stage_tasks_take_their_retries_and_timeout_from_params() -> None:
    tiny = load_config(ROOT / "params.yaml").pipeline
    assert stage_task("imitate", tiny).retries == tiny.stage_retries["imitate"]
    assert stage_task("imitate", tiny).timeout_seconds == tiny.stage_timeout_s["imitate"]
    assert stage_task("collect", tiny).retries == tiny.retries
    assert stage_task("collect", tiny).timeout_seconds == tiny.timeout_s
    ci = load_config(ROOT / "params.yaml", "ci").pipeline
    assert {stage_task(name, ci).retries for name in STAGES} == {0}


def test_prefect_yaml_deploys_the_flows_with_their_parameters_on_the_process_pool() -> None:
    import importlib

    from prefect.schedules import Cron

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = [d["name"] for d in spec["deployments"]]
    assert len(names) == len(set(names)), "`prefect deploy --name` needs unique deployment names"
    for deployment in spec["deployments"]:
        path, function = deployment["entrypoint"].split(":")
        flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function)
        assert set(deployment["parameters"]) <= set(flow.parameters.properties), deployment["name"]
        assert deployment["work_pool"]["name"] == "lamops-process"
        for schedule in deployment.get("schedules", []):
            Cron(schedule["cron"], timezone=schedule["timezone"])  # raises on a bad cron
    schedules = {d["name"]: d["schedules"][0]["cron"] for d in spec["deployments"] if d.get("schedules")}
    assert schedules == {"nightly-data": "0 2 * * *", "weekly-retrain": "0 4 * * 0"}
    assert spec["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $LAMOPS_CODE_DIR }}"}}
    ]


def test_the_work_pool_templates_are_prefect_job_templates_with_the_lamops_settings() -> None:
    process = json.loads((ROOT / "infra/prefect/process.json").read_text())
    k8s = json.loads((ROOT / "infra/prefect/kubernetes.json").read_text())
    for template in (process, k8s):
        assert set(template) == {"job_configuration", "variables"}
    variables = k8s["variables"]["properties"]
    assert variables["image"]["default"] == "lamops:latest"
    assert variables["env"]["default"]["LAMOPS_CODE_DIR"] == "/app"  # infra/docker/Dockerfile's WORKDIR
    container = k8s["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "{{ image }}"
    assert container["envFrom"] == [
        {"configMapRef": {"name": "{{ config_map_name }}"}},
        {"secretRef": {"name": "{{ secret_name }}"}},
    ]
    assert {"config_map_name", "secret_name"} <= set(variables)
