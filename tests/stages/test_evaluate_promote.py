"""Evaluation decides promotion: a model that is measurably good on the test split becomes `champion` of
`lam`; the same model with its weights perturbed is evaluated, rejected with reasons and never promoted; a
better one takes over, the old champion keeping `previous-champion`.

The "good" model is a tiny Mistral fitted for a few seconds to the very test steps it is scored on: a
fixture whose scores are known to be high, not a trained LAM (tests/stages/test_train_stages.py covers
those)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import copy_project, tiny_spec
from small_project import DATA, PROFILE
from small_project import config as project_config

from lamops.stages import get_stage

# One torch thread: the fit and the evaluations run in-process (evaluate.workers=0).
pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("evaluate_promote"),
    pytest.mark.timeout(1200),
    pytest.mark.usefixtures("one_thread"),
]
EVALUATE = [
    "evaluate.phases=[lam4]",
    "evaluate.offline_max_rows=16",
    "evaluate.online_max_tasks=3",
    "evaluate.max_steps=3",
    "evaluate.workers=0",
    "promote.metric=offline.ssr",
    "promote.thresholds={offline.operation_acc: 50}",
    "promote.no_regression=[offline.ssr, offline.object_acc, offline.operation_acc]",
    "promote.tolerance=2",
]
TOLERANCE = 2.0


def config(root: Path, model: str):
    return project_config(root, *EVALUATE, f"offline_rl.out_dir={model}")


@pytest.fixture(scope="module")
def project(data_project, tmp_path_factory) -> Path:
    """A copy of the session's small data project (tests/small_project.py): models, metrics and the
    registry are written into it."""
    return copy_project(data_project, tmp_path_factory.mktemp("promote-project") / "project")


def scored_rows(root: Path) -> list[dict]:
    from lamops.evaluation.offline import whole_tasks
    from lamops.records import StepSFTRow
    from lamops.stages.training import read_rows

    cfg = config(root, "models/none")
    rows = read_rows(cfg.path(cfg.datasets.out_dir) / "sft" / "test.jsonl", StepSFTRow)
    return whole_tasks(rows, cfg.evaluate.offline_max_rows)


def fit(model, tokenizer, rows: list[dict], steps: int, seed: int = 0) -> None:
    """A bare loop: completion-only loss on `rows`, the encoding SFT uses."""
    from lamops.train.sft import encode_sample

    samples = [encode_sample(tokenizer, r.prompt, r.completion, 1024) for r in rows]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = [samples[i] for i in torch.randperm(len(samples), generator=generator)[:4].tolist()]
        width = max(len(s["input_ids"]) for s in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for k, s in enumerate(batch):
            n = len(s["input_ids"])
            ids[k, :n], labels[k, :n], mask[k, :n] = (
                torch.tensor(s["input_ids"]),
                torch.tensor(s["labels"]),
                1,
            )
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@pytest.fixture(scope="module")
def models(project: Path) -> dict[str, str]:
    """good: fitted to the scored steps; degraded: good with every weight perturbed; better: good fitted
    longer. Folders relative to the project root."""
    from lamops.models.factory import build_tiny, save
    from lamops.models.tokenizer import train_tokenizer

    torch.manual_seed(0)
    rows = scored_rows(project)
    tokenizer = train_tokenizer(
        [x for r in rows for x in (r.prompt, r.completion)], project / "tokenizer", vocab_size=1024
    )
    model = build_tiny(tiny_spec(), tokenizer)
    fit(model, tokenizer, rows, steps=120)
    save(model, tokenizer, project / "models" / "good")
    good = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        noise = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=noise) * 2.0 * (p.std() if p.numel() > 1 else 1.0))
    save(model, tokenizer, project / "models" / "degraded")
    model.load_state_dict(good)
    fit(model, tokenizer, rows, steps=60, seed=1)
    save(model, tokenizer, project / "models" / "better")
    return {name: f"models/{name}" for name in ("good", "degraded", "better")}


def evaluate_and_promote(root: Path, model: str):
    cfg = config(root, model)
    get_stage("evaluate")(cfg)
    metrics = json.loads((root / "metrics" / "lam4.json").read_text())
    return metrics, get_stage("promote")(cfg)


def registry(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{root / 'mlflow.db'}")


def alias(root: Path, name: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        return int(registry(root).get_model_version_by_alias("lam", name).version)
    except MlflowException:
        return None


def test_a_degraded_model_is_evaluated_and_never_promoted_a_better_one_is(project, models):
    good, good_result = evaluate_and_promote(project, models["good"])
    assert good["model_dir"] == models["good"]
    assert good["offline"]["operation_acc"] >= 50, good["offline"]
    champion = alias(project, "champion")
    assert champion is not None, good_result.message
    tags = registry(project).get_model_version("lam", str(champion)).tags
    assert tags["lamops.phase"] == "lam4"

    degraded, degraded_result = evaluate_and_promote(project, models["degraded"])
    # The premise: perturbing the weights made it measurably worse on a gated metric.
    assert degraded["offline"]["ssr"] < good["offline"]["ssr"] - TOLERANCE or (
        degraded["offline"]["operation_acc"] < good["offline"]["operation_acc"] - TOLERANCE
    ), (good["offline"], degraded["offline"])
    assert alias(project, "champion") == champion, degraded_result.message
    rejected = alias(project, "rejected")
    assert rejected is not None and rejected != champion
    reasons = registry(project).get_model_version("lam", str(rejected)).tags["lamops.rejected_reasons"]
    assert "offline." in reasons

    better, better_result = evaluate_and_promote(project, models["better"])
    assert better["offline"]["ssr"] >= good["offline"]["ssr"] - TOLERANCE, (
        good["offline"],
        better["offline"],
    )
    new_champion = alias(project, "champion")
    assert new_champion not in (None, champion, rejected), better_result.message
    assert alias(project, "previous-champion") == champion
    # The table and the per-phase run exist for every evaluation.
    assert (project / "reports" / "evaluate" / "phase_table.md").read_text().count("LAM4") >= 1
    # In MLflow: the evaluate run's description shows the table and links it; the phase runs under it carry
    # `lamops.phase` and the same metric keys (the expert, replayed from its logs, has only the online ones).
    client = registry(project)
    experiment = client.get_experiment_by_name("lamops")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (evaluate,) = client.search_runs(
        [experiment.experiment_id],
        "tags.lamops.stage = 'evaluate'",
        order_by=["start_time DESC"],
        max_results=1,
    )
    note = evaluate.data.tags["mlflow.note.content"]
    assert f"/runs/{evaluate.info.run_id}/artifacts/phase_table.md)" in note and "| Object Acc |" in note
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{evaluate.info.run_id}'"
    )
    by_phase = {run.data.tags["lamops.phase"]: set(run.data.metrics) for run in children}
    assert set(by_phase) == {"lam4", "expert"}
    assert by_phase["expert"] and all(k.startswith("online.") for k in by_phase["expert"])
    assert {k for k in by_phase["lam4"] if k.startswith("online.")} == by_phase["expert"]


def test_the_flow_publishes_the_phase_table_and_the_promotion_as_prefect_artifacts(
    project, models, prefect_server
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.pipeline import pipeline

    overrides = [*DATA, *EVALUATE, f"offline_rl.out_dir={models['better']}"]
    results = pipeline(
        params=str(project / "params.yaml"),
        profile=PROFILE,
        stages=["evaluate", "promote"],
        overrides=overrides,
    )
    assert [r["stage"] for r in results] == ["evaluate", "promote"]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["phase-table", "promotion"]))
        )
    by_key = {a.key: a for a in found}
    assert "| Object Acc |" in by_key["phase-table"].data
    assert results[1]["message"] in by_key["promotion"].data
