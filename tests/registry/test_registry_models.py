"""Registry IO against a real sqlite MLflow store: log, register, reload, generate, tag and alias a tiny
Mistral."""

import subprocess
from pathlib import Path

import pytest
import torch

from lamops.registry import models as registry

TEXTS = [
    "open the home tab and click bold",
    "select the first paragraph and make it italic",
    "insert a table with three rows",
    '{"control_label": "7", "function": "click", "args": {}, "status": "CONTINUE"}',
] * 10

DVC_LOCK = """\
schema: '2.0'
stages:
  datasets:
    cmd: lamops datasets
    deps:
    - path: data/judged
      hash: md5
      md5: 1111.dir
    outs:
    - path: data/datasets
      hash: md5
      md5: 2222.dir
      size: 10
      nfiles: 2
  lam1:
    cmd: lamops lam1
    deps:
    - path: data/datasets
      hash: md5
      md5: 2222.dir
"""


def _git(root: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def project(tmp_path):
    """A git repository with a committed dvc.lock, standing in for the project root."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "dvc.lock").write_text(DVC_LOCK)
    _git(root, "init", "-q")
    _git(root, "add", "dvc.lock")
    _git(root, "commit", "-q", "-m", "lock")
    return root


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A temporary sqlite tracking store and local artifact folder; returns the experiment id."""
    import mlflow

    # set_tracking_uri exports MLFLOW_TRACKING_URI: monkeypatch restores the variable after the test.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment_id = mlflow.create_experiment("registry", artifact_location=(tmp_path / "artifacts").as_uri())
    yield experiment_id
    mlflow.set_tracking_uri(None)


@pytest.fixture
def tiny_model_dir(tmp_path):
    from lamops.models.factory import build_tiny, save
    from lamops.models.tokenizer import train_tokenizer
    from lamops.settings import ModelSpec

    tokenizer = train_tokenizer(TEXTS, tmp_path / "tokenizer", vocab_size=300, min_frequency=1)
    spec = ModelSpec(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
        vocab_size=300,
    )
    model = build_tiny(spec, tokenizer)
    return save(model, tokenizer, tmp_path / "model"), model, tokenizer


def test_lineage_tags_read_git_and_dvc_lock(project):
    tags = registry.lineage_tags(project, ["data/datasets", "data/judged", "./data/missing"])

    assert tags[registry.GIT_COMMIT_TAG] == _git(project, "rev-parse", "HEAD")
    assert tags[registry.GIT_DIRTY_TAG] == "false"
    assert tags["lamops.data.data/datasets"] == "2222.dir"
    assert tags["lamops.data.data/judged"] == "1111.dir"
    assert tags["lamops.data.data/missing"] == registry.NOT_IN_LOCK

    (project / "dvc.lock").write_text(DVC_LOCK + "\n")
    assert registry.lineage_tags(project, [])[registry.GIT_DIRTY_TAG] == "true"


def test_lineage_tags_outside_git_are_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    folder = tmp_path / "plain"
    folder.mkdir()

    tags = registry.lineage_tags(folder, ["data/datasets"])

    assert tags[registry.GIT_COMMIT_TAG] == "unknown"
    assert tags[registry.GIT_DIRTY_TAG] == "unknown"
    assert tags["lamops.data.data/datasets"] == registry.NOT_IN_LOCK


def test_bad_dvc_lock_says_where(tmp_path):
    (tmp_path / "dvc.lock").write_text("stages: [not, a, mapping]\n")
    with pytest.raises(ValueError, match="dvc.lock"):
        registry.lineage_tags(tmp_path, ["data/x"])


def test_log_register_reload_and_alias(store, project, tiny_model_dir):
    import mlflow

    model_dir, model, tokenizer = tiny_model_dir
    lineage = registry.lineage_tags(project, ["data/datasets"])

    with pytest.raises(RuntimeError, match="no active MLflow run"):
        registry.log_and_register(model_dir, "x", tags=lineage, parent=None, signature_example=None)

    with mlflow.start_run(experiment_id=store) as run:
        first = registry.log_and_register(model_dir, "x", tags=lineage, parent=None, signature_example=None)
    from lamops.agents.plans import PlanLibrary

    library = PlanLibrary(["Make 'a' bold."], [("1. Select the text 'a'.", "2. Click Bold.")])
    library.save(model_dir)  # the second version carries a plan library; the agent gets it back
    with mlflow.start_run(experiment_id=store):
        second = registry.log_and_register(
            model_dir,
            "x",
            tags=lineage,
            parent="x/1",
            signature_example=("open the home tab", '{"control_label": "7"}'),
        )

    assert first == registry.RegisteredVersion("x", 1, "models:/x/1", run.info.run_id)
    assert (second.version, second.model_uri) == (2, "models:/x/2")

    tags = registry.version_tags("x", 2)
    assert tags[registry.GIT_COMMIT_TAG] == _git(project, "rev-parse", "HEAD")
    assert tags["lamops.data.data/datasets"] == "2222.dir"
    assert tags[registry.PARENT_TAG] == "x/1"
    assert registry.PARENT_TAG not in registry.version_tags("x", 1)
    assert mlflow.get_run(second.run_id).data.tags[registry.PARENT_TAG] == "x/1"

    loaded, loaded_tokenizer = registry.load_registered("models:/x/2")
    ids = tokenizer("open the home tab", return_tensors="pt").input_ids
    assert loaded_tokenizer("open the home tab", return_tensors="pt").input_ids.tolist() == ids.tolist()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
        generated = loaded.generate(ids, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 4

    assert registry.get_alias("x", "champion") is None
    assert registry.get_alias("no-such-model", "champion") is None
    registry.set_alias("x", "champion", 1)
    registry.set_alias("x", "champion", second.version)
    registry.set_alias("x", "previous-champion", 1)
    assert registry.get_alias("x", "champion") == 2
    assert registry.get_alias("x", "previous-champion") == 1
    champion, _ = registry.load_registered("models:/x@champion")
    assert registry.load_registered_plans("models:/x/1") is None
    plans = registry.load_registered_plans("models:/x@champion")
    assert (plans.requests, plans.items) == (library.requests, library.items)
    with torch.no_grad():
        torch.testing.assert_close(champion(ids).logits, model(ids).logits)

    registry.tag_version("x", 1, "lamops.gate", "rejected: step accuracy 0.1 < 0.5")
    assert registry.version_tags("x", 1)["lamops.gate"] == "rejected: step accuracy 0.1 < 0.5"
    registry.delete_alias("x", "previous-champion")
    assert registry.get_alias("x", "previous-champion") is None


def test_logged_model_generates_as_pyfunc(store, tiny_model_dir):
    import mlflow

    model_dir, _, _ = tiny_model_dir
    with mlflow.start_run(experiment_id=store):
        version = registry.log_and_register(
            model_dir, "y", tags={}, parent=None, signature_example=("open the", "open the home tab")
        )

    pyfunc = mlflow.pyfunc.load_model(version.model_uri)
    [text] = pyfunc.predict(["open the"], params={"max_new_tokens": 3})
    assert isinstance(text, str) and text


def test_a_lora_phases_version_is_tagged_with_its_adapters(store, project, tiny_model_dir):
    """A folder published by a LoRA phase (`lamops_lora.json` beside the merged weights) registers with the
    record as the version's `lamops.lora` tag; a fully fine-tuned one has no such tag."""
    import json
    from types import SimpleNamespace

    import mlflow
    from lamops.models.factory import save
    from lamops.stages.training import LORA_TAG, register
    from lamops.train.sft import LORA_FILE

    model_dir, model, tokenizer = tiny_model_dir
    record = {"r": 4, "alpha": 32.0, "dropout": 0.1, "target_modules": ["q_proj"], "merged": True}
    lora_dir = save(model, tokenizer, model_dir.parent / "lora", extra={LORA_FILE: record})
    cfg = SimpleNamespace(root=project)
    with mlflow.start_run(experiment_id=store):
        full = register(cfg, model_dir, "lam1", data=[], parent=None, example=None)
    with mlflow.start_run(experiment_id=store):
        lora = register(cfg, lora_dir, "lam1", data=[], parent=None, example=None)
    assert LORA_TAG not in registry.version_tags("lam1", full.version)
    assert json.loads(registry.version_tags("lam1", lora.version)[LORA_TAG]) == record
