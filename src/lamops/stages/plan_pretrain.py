"""LAM1: a tokenizer trained on the pipeline's own text, then SFT task -> plan (loss on the plan only).

Data in: `datasets/plan_sft/train.jsonl` (task -> numbered plan, collected and evolved pairs; test lineages
never). The base model is `model` in params: the tiny Mistral built from its sizes with a byte-level BPE
trained here on the train splits (`lamops.models.tokenizer`), or a pretrained model with its own tokenizer.
Data out: `plan_pretrain.out_dir`, LAM1 in the save_pretrained layout, registered in MLflow as `lam1`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from lamops.config import Config
from lamops.phases import phase
from lamops.stages.base import StageResult

PHASE = "plan_pretrain"
REGISTERED = phase(PHASE).registered


def run(cfg: Config) -> StageResult:
    from lamops.models.tokenizer import corpus_texts, train_tokenizer
    from lamops.records import PlanSFTRow
    from lamops.stages.training import read_rows, train_phase

    c = cfg.plan_pretrain
    datasets = cfg.path(cfg.datasets.out_dir)
    rows = read_rows(datasets / "plan_sft" / "train.jsonl", PlanSFTRow)
    with tempfile.TemporaryDirectory(prefix="lamops-tokenizer-") as folder:
        tokenizer_dir = None
        if cfg.model.source == "tiny":
            # Deterministic: a resumed run retrains the very same tokenizer its checkpoint was made with.
            tokenizer_dir = Path(folder) / "tokenizer"
            train_tokenizer(corpus_texts(datasets), tokenizer_dir, vocab_size=cfg.model.vocab_size)
        return train_phase(
            cfg,
            PHASE,
            REGISTERED,
            rows=rows,
            base=cfg.model,
            tokenizer_dir=tokenizer_dir,
            out_dir=cfg.path(c.out_dir),
            sft=c.sft,
            data_files=[datasets / "plan_sft" / "train.jsonl"],
            parent=None,
        )
