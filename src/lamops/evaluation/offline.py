"""Offline evaluation: teacher-forced decisions on the test split's reference histories, and LAM1's plans.

- `decide`: each test step's stored observation prompt (the expert's reference history up to that step) goes
  through the LAM agent's grammar-constrained decoder, exactly as online; the action is scored against the
  reference action (`metrics.score_step`). Rows are whole test tasks in file order, so task success (TSR) is
  defined for every task scored.
- `generate_plans`: LAM1 writes a plan for each test task (greedy, `BOS + task`, as in training); the plans
  are scored by the step matcher (`metrics.score_plan`) or an LLM judge.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lamops.evaluation.metrics import StepScore, score_step
from lamops.records import StepSFTRow

if TYPE_CHECKING:
    from lamops.agents.decoding import Decoded

log = logging.getLogger(__name__)


def load(model_dir: Path) -> tuple[Any, Any]:
    """The causal LM (eval mode) and tokenizer of a phase's save_pretrained folder; a missing folder is an
    error that names it."""
    from lamops.models.factory import make_model
    from lamops.settings import ModelSpec

    if not (Path(model_dir) / "config.json").is_file():
        raise FileNotFoundError(
            f"{model_dir}: no model (config.json) here; run the stage that trains it first"
        )
    model, tokenizer = make_model(ModelSpec(source="pretrained", path=str(model_dir)))
    return model.eval(), tokenizer


def whole_tasks(rows: Sequence[StepSFTRow], limit: int | None) -> list[StepSFTRow]:
    """The first rows, in file order, that cover whole tasks: tasks until they hold `limit` rows, the last one
    whole (so a few more rows may come back; at least one task)."""
    if limit is None or len(rows) <= limit:
        return list(rows)
    out: list[StepSFTRow] = []
    for i, row in enumerate(rows):
        if len(out) >= limit and row.task_id != rows[i - 1].task_id:
            break
        out.append(row)
    return out


def decide(agent, rows: Sequence[StepSFTRow], progress=None) -> list[StepScore]:
    """Teacher-forced decisions: one constrained decode per test step, scored against its reference."""
    return decide_actions(agent, rows, progress)[0]


def decide_actions(agent, rows: Sequence[StepSFTRow], progress=None) -> tuple[list[StepScore], list[Decoded]]:
    """`decide`, and the decoded actions beside their scores (the LAM4 guard also asks the reward model)."""
    scores: list[StepScore] = []
    actions: list[Decoded] = []
    size = agent.config.batch_size
    for start in range(0, len(rows), size):
        batch = rows[start : start + size]
        decoded = agent.act_prompts([r.prompt for r in batch])
        for row, d in zip(batch, decoded, strict=True):
            reference = json.loads(row.completion)
            scores.append(score_step(row.task_id, row.family, row.step, d.action, reference))
        actions += decoded
        if progress is not None:
            progress.update(len(batch))
    return scores, actions


@torch.no_grad()
def generate_plans(
    model,
    tokenizer,
    tasks: Sequence[str],
    *,
    max_len: int,
    max_new_tokens: int,
    batch_size: int,
    progress=None,
) -> list[str]:
    """Greedy plans for `tasks`: `BOS + task` (left-padded in batches), up to EOS or `max_new_tokens`."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    room = max(1, max_len - max_new_tokens - 1)
    plans: list[str] = []
    for start in range(0, len(tasks), batch_size):
        batch = tasks[start : start + batch_size]
        encoded = [[bos, *tokenizer(t, add_special_tokens=False)["input_ids"][-room:]] for t in batch]
        width = max(len(ids) for ids in encoded)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(encoded):
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=pad,
        )
        for row in out[:, width:]:
            tokens = row.tolist()
            if eos in tokens:
                tokens = tokens[: tokens.index(eos)]
            plans.append(tokenizer.decode(tokens, skip_special_tokens=True))
        if progress is not None:
            progress.update(len(batch))
    return plans
