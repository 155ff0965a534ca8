"""Every training phase, the evaluation and `lamops agent` on a Mistral-style SentencePiece model (`▁`
prepended to a text, `<0xNN>` byte fallback; tests/sp_model.py) with `model.source: pretrained`, the path of
`--profile paper`, at a few steps a phase on CPU: LAM1-LAM3 SFT, the reward model, PPO, offline and online
evaluation, the agent on a user document. What each phase trains on is what the constrained decoder writes
(the tokenizer of `--profile paper` prepends `▁` to a completion that the grammar never writes)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from helpers import ROOT, copy_project
from small_project import config as project_config

from lamops.stages import get_stage

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(900)]
PHASES = ("plan_pretrain", "imitate", "self_boost", "reward_model", "offline_rl")
BUDGET = [
    "plan_pretrain.sft.max_steps=2",
    "imitate.sft.max_steps=2",
    "self_boost.attempts=1",
    "self_boost.max_tasks=2",
    "self_boost.sft.max_steps=2",
    "reward_model.rm.max_steps=2",
    "offline_rl.ppo.max_steps=1",
    "offline_rl.ppo.max_new_tokens=24",
    "offline_rl.guard.max_rows=4",
    "evaluate.offline_max_rows=4",
    "evaluate.planning_max_tasks=2",
    "evaluate.planning_max_new_tokens=16",
    "evaluate.online_max_tasks=2",
    "evaluate.max_steps=2",
    "evaluate.workers=0",
]


@pytest.fixture(scope="module")
def project(data_project, tmp_path_factory) -> Path:
    return copy_project(data_project, tmp_path_factory.mktemp("sp-project") / "project")


@pytest.fixture(scope="module")
def cfg(project, sp_mistral):
    return project_config(project, "model.source=pretrained", f"model.path={sp_mistral}", *BUDGET)


@pytest.fixture(scope="module")
def trained(project, cfg) -> dict:
    return {name: get_stage(name)(cfg) for name in PHASES}


def test_every_phase_trains_and_publishes_the_sentencepiece_tokenizer(project, cfg, trained, sp_mistral):
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(sp_mistral).get_vocab()
    for name in PHASES:
        out = cfg.path(getattr(cfg, name).out_dir)
        assert (out / "config.json").is_file(), name
        assert AutoTokenizer.from_pretrained(out).get_vocab() == vocab, name


def test_what_each_policy_phase_trains_on_is_what_the_decoder_writes(project, cfg, trained):
    """The SFT encoding of LAM2's and LAM3's rows, with the tokenizer each published, walked through the
    decoder's grammar: forced chunks are the training tokens and every other token is allowed."""
    from transformers import AutoTokenizer

    from lamops.agents.constraints import constraints_from_prompt
    from lamops.agents.decoding import Cursor
    from lamops.agents.grammar import Limits
    from lamops.agents.vocab import vocab_for
    from lamops.train.sft import IGNORE_INDEX, encode_sample

    rows = [json.loads(x) for x in (project / "data/datasets/sft/train.jsonl").read_text().splitlines()]
    for name in ("imitate", "self_boost", "offline_rl"):
        tokenizer = AutoTokenizer.from_pretrained(cfg.path(getattr(cfg, name).out_dir))
        # Caps no reference reaches (the agent's default caps cut the longest plans: not this test's subject).
        vocab, limits = vocab_for(tokenizer), Limits(400, 40, 400, 400)
        for row in rows[:40]:
            encoded = encode_sample(tokenizer, row["prompt"], row["completion"], 2048)
            target = [t for t in encoded["labels"] if t != IGNORE_INDEX][:-1]
            cur, i = Cursor(constraints_from_prompt(row["prompt"]), limits, vocab), 0
            while not cur.complete:
                forced = cur.forced()
                if forced:
                    assert target[i : i + len(forced)] == forced, (name, cur.text())
                else:
                    assert bool(cur.allowed()[target[i]]), (name, cur.text())
                    forced = target[i : i + 1]
                for tid in forced:
                    cur.push(tid)
                i += len(forced)
            assert i == len(target) and cur.text() == row["completion"]


def test_evaluate_decodes_every_phase_offline_and_online(project, cfg, trained):
    get_stage("evaluate")(cfg)
    steps = [json.loads(x) for x in (project / "reports/evaluate/steps.jsonl").read_text().splitlines()]
    for phase in ("lam1", "lam2", "lam3", "lam4"):
        metrics = json.loads((project / "metrics" / f"{phase}.json").read_text())
        assert metrics["offline"]["steps"] > 0 and metrics["online"]["episodes"] == 2, phase
        assert [s for s in steps if s["phase"] == phase], phase
    assert json.loads((project / "metrics/lam1.json").read_text())["planning"]["tasks"] == 2


def test_the_agent_edits_a_user_document_with_the_sentencepiece_lam(project, cfg, trained, tmp_path):
    import docx
    from typer.testing import CliRunner

    from lamops.cli import app

    d = docx.Document()
    d.add_paragraph("Revenue grew strongly this year: naïve café, 5 €.")
    d.add_paragraph("Costs fell.")
    buffer = io.BytesIO()
    d.save(buffer)
    doc = tmp_path / "report.docx"
    doc.write_bytes(buffer.getvalue())
    out = tmp_path / "edited.docx"
    model = cfg.path(cfg.offline_rl.out_dir)
    result = CliRunner().invoke(
        app,
        ["agent", "--params", str(ROOT / "params.yaml"), "--request", "Make Revenue bold", "--doc", str(doc)]
        + ["--out", str(out), "--model", str(model), "--max-steps", "2", "--json"],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert 1 <= len(record["steps"]) <= 2
    assert all(s["function"] for s in record["steps"])  # every action parsed
    assert out.is_file()
