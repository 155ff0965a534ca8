"""LAM2: SFT from LAM1 on the expert's successful steps, observation -> action (loss on the action only).

Data in: LAM1 (`plan_pretrain.out_dir`) and `datasets/sft/train.jsonl` (the paper's prompt: controls,
canvas, request, previous actions and plan; completion: the action JSON). Data out: `imitate.out_dir`, LAM2,
registered in MLflow as `lam2` with `lam1`'s version as its parent.
"""

from __future__ import annotations

from lamops.config import Config
from lamops.phases import parent, phase
from lamops.stages.base import StageResult

PHASE = "imitate"
REGISTERED = phase(PHASE).registered


def run(cfg: Config) -> StageResult:
    from lamops.records import StepSFTRow
    from lamops.stages.training import read_rows, train_phase

    data = cfg.path(cfg.datasets.out_dir) / "sft" / "train.jsonl"
    base = cfg.path(cfg.plan_pretrain.out_dir)
    return train_phase(
        cfg,
        PHASE,
        REGISTERED,
        rows=read_rows(data, StepSFTRow),
        base=base,
        tokenizer_dir=None,
        out_dir=cfg.path(cfg.imitate.out_dir),
        sft=cfg.imitate.sft,
        data_files=[data],
        parent=(parent(PHASE).registered, base),
    )
