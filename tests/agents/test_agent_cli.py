"""`lamops agent` in-process with a tiny random model: steps printed as they happen, the result written to
--out, the input untouched, and every bad input (same file, missing model, unknown alias, corrupt .docx,
empty request) refused with a one-line error and exit status 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import docx
import pytest
from helpers import ROOT, tiny_spec

# pytest puts this folder on sys.path (rootdir-relative "prepend" imports): the documents are built there.
from test_user_doc import HOSTILE_COUNTS, hostile_docx
from typer.testing import CliRunner

from lamops.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
# Smaller than helpers.TINY_MODEL: the model is only ever run, never trained.
TINY = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 2048,
    "vocab_size": 512,
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A randomly initialised tiny Mistral, its tokenizer trained on observations of the hostile document."""
    from lamops.agents.user_doc import USER_TEMPLATE, user_task
    from lamops.env.word import WordEnv
    from lamops.models.factory import build_tiny, save
    from lamops.models.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("lam")
    env = WordEnv({USER_TEMPLATE: hostile_docx()})
    texts = [env.reset(user_task(r)).prompt() for r in ("Make Revenue bold", "Insert a table")]
    tokenizer = train_tokenizer(texts, root / "tokenizer", vocab_size=TINY["vocab_size"])
    return save(build_tiny(tiny_spec(**TINY), tokenizer), tokenizer, root / "model")


@pytest.fixture
def doc(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "report.docx"
    path.write_bytes(hostile_docx())
    os.utime(path, (1_700_000_000, 1_700_000_000))
    return path


def agent(*args: str):
    return runner.invoke(app, ["agent", "--params", str(ROOT / "params.yaml"), *args])


def untouched(doc: Path, data: bytes) -> bool:
    return (
        doc.read_bytes() == data
        and doc.stat().st_mtime == 1_700_000_000
        and os.listdir(doc.parent) == [doc.name]
    )


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_agent_prints_each_step_and_writes_the_result(model_dir, doc, tmp_path):
    data = doc.read_bytes()
    out = tmp_path / "out" / "edited.docx"
    out.parent.mkdir()
    result = agent(
        "--request", "Make Revenue bold", "--doc", str(doc), "--out", str(out), "--model", str(model_dir)
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "request: Make Revenue bold"
    assert lines[1] == f"document: {doc}"
    assert "; not shown: 3 images, 1 chart, 1 text box, 2 content controls" in lines[3]
    steps = [line for line in lines if line.startswith("  ")]
    assert steps and steps[0].startswith("  1. ")
    assert all(" -> ok: " in s or " -> error: " in s for s in steps) and all(s.endswith(" s)") for s in steps)
    assert lines[-3].startswith("status: ") and ("FINISH" in lines[-3] or "step limit" in lines[-3])
    assert lines[-2] == f"saved: {out}"
    assert lines[-1] == "verdict: no verifier for a user document (it has no goal predicate)"
    assert len(docx.Document(str(out)).paragraphs) >= 10
    assert untouched(doc, data)
    assert os.listdir(out.parent) == ["edited.docx"]

    # An existing --out is refused unless --overwrite; --json prints the trajectory, steps go to stderr.
    again = agent(
        "--request", "Make Revenue bold", "--doc", str(doc), "--out", str(out), "--model", str(model_dir)
    )
    one_line_error(again, f"--out {out} exists; pass --overwrite")
    result = agent(
        *("--request", "Make Revenue bold", "--doc", str(doc), "--out", str(out), "--model", str(model_dir)),
        *("--overwrite", "--json", "--max-steps", "2"),
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["not_shown"] == HOSTILE_COUNTS and record["status"] in ("FINISH", "step_limit")
    assert 1 <= len(record["steps"]) <= 2 and "prompt" not in record["steps"][0]
    assert "  1. " in result.stderr
    assert untouched(doc, data)


def test_out_that_is_the_input_is_refused(model_dir, doc):
    data = doc.read_bytes()
    for out in (doc, doc.parent / "." / doc.name):
        result = agent(
            "--request", "Bold it", "--doc", str(doc), "--out", str(out), "--model", str(model_dir)
        )
        one_line_error(result, "is the input document")
        assert untouched(doc, data)


def test_missing_model_folder_is_a_one_line_error(doc, tmp_path):
    missing = tmp_path / "no-model"
    result = agent(
        "--request", "Bold it", "--doc", str(doc), "--out", str(tmp_path / "o.docx"), "--model", str(missing)
    )
    one_line_error(result, str(missing), "does not exist", "lamops pipeline", "--model models/lam4")
    assert not (tmp_path / "o.docx").exists()


@pytest.fixture
def own_tracking_store(monkeypatch):
    """The command points MLflow at the params' store: give the process its default back afterwards."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    mlflow.set_tracking_uri(None)


def test_registered_models_load_and_unknown_ones_are_one_line_errors(
    model_dir, doc, tmp_path, own_tracking_store
):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    # The test's own store and artifact folder: nothing is written in the project.
    overrides = [f"tracking.uri={store}", f"tracking.artifact_root={tmp_path}/artifacts"]
    base = ["--request", "Bold it", "--doc", str(doc), "--out", str(tmp_path / "o.docx")]
    base += [arg for o in overrides for arg in ("--set", o)]
    result = agent(*base)  # default: models:/lam@champion
    one_line_error(result, "models:/lam@champion", f"no MLflow store at {store}", "lamops promote")
    assert not (tmp_path / "mlflow.db").exists()  # looking did not create a store

    from lamops import tracking
    from lamops.config import load_config

    experiment = tracking.setup(load_config(ROOT / "params.yaml", overrides=overrides))
    for uri, what in (("models:/lam@champion", "no alias @champion"), ("models:/lam/3", "no version 3")):
        one_line_error(agent(*base, "--model", uri), uri, what, "lamops pipeline")
    result = agent(*base, "--model", "models:/lam")
    one_line_error(result, "not a models:/NAME/VERSION or models:/NAME@ALIAS URI")

    # The default, models:/lam@champion, once a version is registered and promoted.
    import mlflow
    from lamops.registry.models import log_and_register, set_alias

    with mlflow.start_run(experiment_id=experiment):
        version = log_and_register(model_dir, "lam", tags={}, parent=None, signature_example=None)
    set_alias("lam", "champion", version.version)
    result = agent(*base, "--max-steps", "1")
    assert result.exit_code == 0, result.output
    assert "model: models:/lam@champion" in result.stdout and "  1. " in result.stdout
    assert docx.Document(str(tmp_path / "o.docx")).paragraphs
    assert (tmp_path / "artifacts").is_dir()


def test_bad_documents_and_requests_are_one_line_errors(model_dir, tmp_path):
    out = str(tmp_path / "o.docx")
    corrupt = tmp_path / "corrupt.docx"
    corrupt.write_bytes(hostile_docx()[:-300])
    notes = tmp_path / "notes.docx"
    notes.write_text("just text, renamed\n")
    for path, what in (
        (corrupt, "a corrupt .docx"),
        (notes, "not a .docx document (not a zip archive)"),
        (tmp_path / "missing.docx", "no such file"),
    ):
        result = agent("--request", "Bold it", "--doc", str(path), "--out", out, "--model", str(model_dir))
        one_line_error(result, str(path), what)
    result = agent("--request", "  ", "--doc", str(notes), "--out", out, "--model", str(model_dir))
    one_line_error(result, "the request is empty")
    assert not Path(out).exists()
