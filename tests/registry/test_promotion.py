"""Promotion against a real sqlite MLflow store: register this run's best phase as a version of `lam`, gate
it, move the aliases; re-runs register nothing twice."""

import json
import shutil
from pathlib import Path

import pytest
from helpers import ROOT

from lamops.config import load_config
from lamops.registry import models as registry
from lamops.registry import promotion
from lamops.stages import get_stage

PHASES = ("lam1", "lam2", "lam3", "lam4")
TEXTS = ["open the home tab and click bold", '{"control_label": "7", "function": "click"}'] * 10
# Passing numbers: operation_acc over the 50.0 threshold of POLICY.
BASE = {"offline.operation_acc": 90.0, "offline.ssr": 50.0, "offline.tsr": 40.0, "online.tsr": 30.0}


# The policy these tests are written against, whatever params.yaml's defaults are.
POLICY = [
    "promote.metric=online.tsr",
    "promote.thresholds={offline.operation_acc: 50.0}",
    "promote.no_regression=[offline.ssr, offline.tsr, online.tsr]",
    "promote.tolerance=2.0",
    "promote.beat_expert=false",
]


def config(root: Path, *overrides: str):
    return load_config(
        root / "params.yaml", overrides=["tracking.uri=sqlite:///mlflow.db", *POLICY, *overrides]
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project root with params.yaml and four tiny models (different seeds, so different shas)."""
    from lamops.models.factory import build_tiny, save
    from lamops.models.tokenizer import train_tokenizer
    from lamops.settings import ModelSpec

    root = tmp_path_factory.mktemp("promote-project")
    shutil.copy(ROOT / "params.yaml", root)
    tokenizer = train_tokenizer(TEXTS, root / "tokenizer", vocab_size=300, min_frequency=1)
    for seed, phase in enumerate(PHASES):
        spec = ModelSpec(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=64,
            vocab_size=300,
            seed=seed,
        )
        save(build_tiny(spec, tokenizer), tokenizer, root / "models" / phase)
    return root


@pytest.fixture(autouse=True)
def own_store(monkeypatch):
    """The config's store, not a user's tracking server or a pipeline's parent run."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LAMOPS_PARENT_RUN_ID", raising=False)
    yield
    mlflow.set_tracking_uri(None)


def write_metrics(root: Path, by_phase: dict[str, dict[str, float]], expert: dict[str, float] | None = None):
    """metrics/<phase>.json as `evaluate` writes them: nested, BASE overridden per phase."""
    folder = root / "metrics"
    folder.mkdir(exist_ok=True)
    for phase in PHASES:
        flat = {**BASE, **by_phase.get(phase, {})}
        data: dict = {"phase": phase, "model_dir": f"models/{phase}"}
        for key, value in flat.items():
            section, name = key.split(".")
            data.setdefault(section, {})[name] = value
        (folder / f"{phase}.json").write_text(json.dumps(data))
    (folder / "expert.json").write_text(json.dumps({"phase": "expert", "online": expert or {"tsr": 35.0}}))


def client():
    from mlflow import MlflowClient

    return MlflowClient()


def versions(name: str = "lam") -> list[int]:
    return sorted(int(v.version) for v in client().search_model_versions(f"name = '{name}'"))


def test_promotion_history(project):
    cfg = config(project)
    write_metrics(project, {"lam4": {"online.tsr": 31.0}})

    first = promotion.promote(cfg)

    assert (first.candidate, first.version, first.passed, first.reused) == ("lam4", 1, True, False)
    assert (first.champion_before, first.champion_after) == (None, 1)
    assert first.source == "lam4/unregistered"
    assert registry.get_alias("lam", "champion") == 1
    tags = registry.version_tags("lam", 1)
    assert tags[promotion.PHASE_TAG] == "lam4"
    assert tags[promotion.DECISION_TAG] == "passed"
    assert tags[registry.MODEL_SHA_TAG] == registry.model_sha(project / "models" / "lam4")
    assert tags["lamops.metric.online.tsr"] == "31.0"
    assert tags["lamops.data.data/datasets"] == registry.NOT_IN_LOCK
    assert registry.GIT_COMMIT_TAG in tags
    run = client().get_run(client().get_model_version("lam", "1").run_id)
    assert run.info.run_name == "promote"
    assert run.data.params["candidate_phase"] == "lam4"
    assert run.data.metrics["online.tsr"] == 31.0
    assert run.data.metrics["passed"] == 1.0
    artifacts = {a.path for a in client().list_artifacts(run.info.run_id)}
    assert {"promotion.json", "promotion.md"} <= artifacts

    # Same metrics, same model: nothing registered, the champion stays.
    again = get_stage("promote")(cfg)
    assert again.message == "lam4 is already lam v1, the champion: nothing registered"
    assert (again.metrics["passed"], again.metrics["version"], again.metrics["already_champion"]) == (1, 1, 1)
    assert versions() == [1]

    # lam3 wins on the gating metric but falls 5.5 below the champion on offline.tsr: rejected.
    _register_phase_version(project, "lam3")
    write_metrics(project, {"lam3": {"online.tsr": 40.0, "offline.tsr": 34.5}})
    worse = get_stage("promote")(cfg)
    assert worse.message == (
        "lam3 registered as lam v2: rejected: "
        "offline.tsr 34.5 fell 5.5 below champion v1 (40.0), tolerance 2.0"
    )
    assert worse.metrics["passed"] == 0
    assert registry.get_alias("lam", "champion") == 1
    assert registry.get_alias("lam", "rejected") == 2
    tags = registry.version_tags("lam", 2)
    assert tags[promotion.DECISION_TAG] == "rejected"
    assert tags[promotion.REJECTED_REASONS_TAG].startswith("offline.tsr 34.5 fell 5.5 below champion v1")
    assert tags[promotion.SOURCE_TAG] == "lam3/1"

    # lam2 is better everywhere: it becomes champion, the old one previous-champion.
    write_metrics(project, {"lam2": {"online.tsr": 45.0, "offline.tsr": 41.0, "offline.ssr": 60.0}})
    better = promotion.promote(cfg)
    assert (better.candidate, better.version, better.passed) == ("lam2", 3, True)
    assert (better.champion_before, better.champion_after) == (1, 3)
    assert registry.get_alias("lam", "champion") == 3
    assert registry.get_alias("lam", "previous-champion") == 1
    assert registry.get_alias("lam", "rejected") == 2

    # lam1 is no worse than the champion but misses a threshold.
    lam1 = {"online.tsr": 50.0, "offline.tsr": 45.0, "offline.ssr": 60.0, "offline.operation_acc": 12.0}
    write_metrics(project, {"lam1": lam1})
    low = promotion.promote(cfg)
    assert (low.candidate, low.version, low.passed) == ("lam1", 4, False)
    assert low.reasons == ["offline.operation_acc 12.0 < threshold 50.0"]
    assert registry.get_alias("lam", "champion") == 3
    assert registry.get_alias("lam", "rejected") == 4

    # The same rejected model again is gated again, not registered twice; with a looser threshold it passes.
    looser = promotion.promote(config(project, "promote.thresholds={offline.operation_acc: 10.0}"))
    assert (looser.version, looser.reused, looser.passed) == (4, True, True)
    assert versions() == [1, 2, 3, 4]
    assert registry.get_alias("lam", "champion") == 4
    assert registry.get_alias("lam", "previous-champion") == 3
    assert registry.get_alias("lam", "rejected") is None
    tags = registry.version_tags("lam", 4)
    assert tags[promotion.DECISION_TAG] == "passed"
    assert promotion.REJECTED_REASONS_TAG not in tags


def _register_phase_version(root: Path, phase: str) -> None:
    """A version of the phase's own registered model, tagged with its sha, as the training stage leaves it
    (registered without logging the model: only the tag matters here)."""
    sha = registry.model_sha(root / "models" / phase)
    client().create_registered_model(phase)
    client().create_model_version(
        phase, (root / "models" / phase).as_uri(), tags={registry.MODEL_SHA_TAG: sha}
    )


def test_champion_without_metric_tags_is_compared_as_no_metrics(tmp_path):
    from lamops.registry.gating import Policy, decide

    assert promotion.metrics_from_tags({"lamops.phase": "lam4", "lamops.metric.online.tsr": "3.5"}) == {
        "online.tsr": 3.5
    }
    assert promotion.metrics_from_tags({"lamops.metric.x": "n/a"}) == {}
    decision = decide(
        {"online.tsr": 1.0}, {}, None, Policy(metric="online.tsr", no_regression=("online.tsr",))
    )
    assert decision.passed
    assert decision.notes == ["champion has no online.tsr: its regression check skipped"]


def test_read_phase_metrics_flattens_and_names_bad_files(tmp_path):
    write_metrics(tmp_path, {"lam2": {"online.tsr": 12.5}})

    read = promotion.read_phase_metrics(tmp_path / "metrics", ["lam2", "expert"])

    assert read["lam2"].model_dir == Path("models/lam2")
    assert read["lam2"].metrics["online.tsr"] == 12.5
    assert read["lam2"].metrics["offline.operation_acc"] == 90.0
    assert read["expert"].model_dir is None
    assert read["expert"].metrics == {"online.tsr": 35.0}

    (tmp_path / "metrics" / "lam3.json").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"lam3\.json: missing metrics of lam3; run `lamops evaluate`"
    ):
        promotion.read_phase_metrics(tmp_path / "metrics", PHASES)
    (tmp_path / "metrics" / "lam3.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"lam3\.json: not valid JSON.*dvc repro evaluate"):
        promotion.read_phase_metrics(tmp_path / "metrics", ["lam3"])
    (tmp_path / "metrics" / "lam3.json").write_text('{"phase": "lam4"}')
    with pytest.raises(ValueError, match=r"lam3\.json: holds the metrics of 'lam4'"):
        promotion.read_phase_metrics(tmp_path / "metrics", ["lam3"])


def test_missing_metrics_file_fails_before_touching_the_registry(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path)

    with pytest.raises(FileNotFoundError, match=r"metrics/lam1\.json: missing.*lamops evaluate"):
        promotion.promote(config(tmp_path))
    assert not (tmp_path / "mlflow.db").exists()
