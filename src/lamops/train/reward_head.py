"""The reward model's grammar head: the LoRA classifier's score and what LAM3's constrained decoder says about
an action, combined by a logistic head fitted on the labelled steps.

Why. The paper's reward model (LAM3 + a scalar head, `lamops.train.reward`) reads the action through LAM3's
free-vocabulary features. Measured on a default run (held-out steps: the test split's expert steps and hard
negatives, and the held-out self-boost tasks' policy steps), no head on those features, frozen or LoRA-tuned
at a default run's step budget, separated good from bad steps much above chance (51-72% balanced accuracy),
while LAM3's *grammar-constrained* greedy decision for the same state equals the row's action for most good
steps and differs for most bad ones (94% balanced accuracy on the test split's rows). The decision that
separates good from bad is the one the agent makes through the grammar, so the reward model reads the action
there too.

Features of one (state, action) (`FEATURES`), all from the policy the reward model was trained from (LAM3,
kept in the folder's `policy/`) and the classifier:
- `classifier`: the trained classifier's score (the paper's reward model; the head learns how much it adds);
- `unreachable`: 1 when the grammar cannot write the action's tokens in this state (a control that is not
  visible, a span that is not in the request): such an action is one the agent can never take;
- for each part of the action (`thought`; the `action` fields control, function, args and status; `plan`),
  from one teacher-forced forward of the policy over the action's tokens (`decoding.teacher_forced`: the
  tokens SFT trains on, written through the decoder's cursor; forced tokens are not choices): the sum and
  the minimum over the part's choices of the margin `log p(token) - max log p` on the grammar-masked
  distribution (0 where the token is the policy's greedy choice), the number of choices that are not
  greedy, and the sum of the masked log-probabilities;
- `agrees`: 1 when the policy's greedy constrained decode for the state (the agent as evaluation runs it:
  copies, plan library) takes the same action (control, function, args, status; the thought and plan are text)
  and `agrees_function_args`: the same function and arguments.

Head: logistic regression on the standardised features (class-balanced weights, L2 `l2` on the weights, not
the bias; Newton's method), fitted on at most `max_rows` training rows drawn with `seed`. The reward model's
score is `tanh(z / 2) = 2 sigmoid(z) - 1` of the head's logit `z`: in (-1, 1), positive exactly when the head
predicts +1, so offline RL's clipped half score and every sign-based metric read it as they read the
classifier's.

Published form (`publish`): the reward-model folder holds the merged classifier (save_pretrained, loads with
the Auto class as before), `policy/` (LAM3's folder, hard-linked where the filesystem allows) and `HEAD_FILE`
(features, standardisation, weights, the agent settings of the greedy decode). `load_reward_model` (here)
returns a `GrammarReward` for such a folder and the classifier alone for one without the head; `score` (here)
scores with either: offline RL and the guard read the reward model through these two. This module imports
`lamops.train.reward`, never the other way round.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lamops.agents.lam import AgentConfig, LAMAgent

HEAD_FILE = "lamops_reward_head.json"
POLICY_DIR = "policy"
PARTS = ("thought", "action", "plan")
FEATURES = (
    "classifier",
    "unreachable",
    *(f"{part}.{name}" for part in PARTS for name in ("margin_sum", "margin_min", "off_greedy", "logp_sum")),
    "agrees",
    "agrees_function_args",
)
ACTION_KEYS = ("control_name", "control_label", "function", "args", "status")
_PART_OF_KEY = {"thought": "thought", "plan": "plan"}  # every other key is one of the action's fields


@dataclass
class Head:
    """A fitted logistic head over `FEATURES`: logit `z = weights . (x - mean) / std + bias`."""

    mean: list[float]
    std: list[float]
    weights: list[float]
    bias: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.weights):
            raise ValueError(f"need (rows, {len(self.weights)}) features, got {x.shape}")
        return ((x - np.asarray(self.mean)) / np.asarray(self.std)) @ np.asarray(self.weights) + self.bias

    def scores(self, x: np.ndarray) -> np.ndarray:
        """tanh(z / 2): in (-1, 1), > 0 exactly where the head predicts +1."""
        return np.tanh(self.logits(x) / 2)


def fit_head(x: np.ndarray, labels: Sequence[int], *, l2: float = 1.0, iterations: int = 50) -> Head:
    """Logistic regression of the +-1 `labels` on the rows of `x` (module docstring): standardised features,
    class-balanced sample weights, L2 `l2` on the weights; deterministic. Both classes must be present."""
    x = np.asarray(x, dtype=np.float64)
    y = (np.asarray(labels) > 0).astype(np.float64)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need (rows, features) and one label a row, got {x.shape} and {len(y)} labels")
    if y.all() or not y.any():
        raise ValueError("the head needs good (+1) and bad (-1) rows; one class is missing")
    mean = x.mean(0)
    std = x.std(0)
    std[std < 1e-9] = 1.0  # a constant feature keeps weight 0
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    weight = np.where(y > 0, 0.5 / y.mean(), 0.5 / (1 - y.mean()))  # each class weighs half
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0
    beta = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(z @ beta, -30, 30)))
        grad = z.T @ (weight * (p - y)) + penalty * beta
        hess = (z * (weight * p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(z.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return Head(mean=mean.tolist(), std=std.tolist(), weights=beta[:-1].tolist(), bias=float(beta[-1]))


def action_fields(text: str) -> tuple[str, ...] | None:
    """What an action does (`ACTION_KEYS`, each as canonical JSON), None when `text` is not a JSON object."""
    try:
        action = json.loads(text)
    except ValueError:
        return None
    if not isinstance(action, dict):
        return None
    return tuple(json.dumps(action.get(k), sort_keys=True) for k in ACTION_KEYS)


def choice_parts(token_bytes: Sequence[bytes], positions: Sequence[int]) -> list[int]:
    """The part (index into `PARTS`) each chosen token writes: by the last JSON key before it in the text
    written so far (the action grammar writes keys in a fixed order; before the first key: the thought)."""
    import re

    key = re.compile(rb'"(\w+)":')
    out, text, at = [], b"", 0
    for position in positions:
        text += b"".join(token_bytes[at:position])
        at = position
        keys = key.findall(text)
        name = keys[-1].decode() if keys else "thought"
        out.append(PARTS.index(_PART_OF_KEY.get(name, "action")))
    return out


@dataclass
class GrammarReward:
    """The reward model of a folder with `HEAD_FILE`: the classifier, the policy acting through the grammar
    and the head. `score` is what offline RL and the guard read; `features` what the head was fitted on."""

    classifier: Any
    tokenizer: Any
    agent: LAMAgent
    head: Head | None
    greedy: dict[str, tuple[str, ...] | None] = field(default_factory=dict)  # prompt -> greedy action fields

    @classmethod
    def build(
        cls,
        classifier: Any,
        tokenizer: Any,
        policy_dir: Path,
        agent: AgentConfig,
        loaded: tuple[Any, Any] | None = None,
    ) -> GrammarReward:
        """The classifier with the policy of `policy_dir` (a phase's folder: model, tokenizer, plan library)
        acting as `agent` greedily; no head yet. `loaded`: that folder's model and tokenizer, already loaded
        (frozen: the caller must not train it)."""
        from lamops.agents.lam import LAMAgent
        from lamops.agents.plans import PlanLibrary
        from lamops.models.factory import make_model
        from lamops.settings import ModelSpec

        if loaded is None:
            if not (Path(policy_dir) / "config.json").is_file():
                raise FileNotFoundError(
                    f"{policy_dir}: no model (config.json); re-run the reward_model stage"
                )
            loaded = make_model(ModelSpec(source="pretrained", path=str(policy_dir)))
        policy, policy_tokenizer = loaded
        policy.requires_grad_(False)
        greedy = agent.model_copy(update={"temperature": 0.0})
        return cls(
            classifier,
            tokenizer,
            LAMAgent(policy, policy_tokenizer, greedy, PlanLibrary.load(policy_dir)),
            None,
        )

    @classmethod
    def load(
        cls, path: Path, classifier: Any, tokenizer: Any, shared: tuple[Path, Any, Any] | None = None
    ) -> GrammarReward:
        """The reward model of folder `path` around its loaded classifier. `shared`: (folder, model,
        tokenizer) of a frozen model the caller holds already (offline RL's reference, LAM3): used as the
        policy instead of loading `policy/` again when `policy/`'s weight files are that folder's own (hard
        links; `publish` makes them), which saves a model's memory on every PPO worker."""
        from lamops.agents.lam import AgentConfig

        record = json.loads((Path(path) / HEAD_FILE).read_text())
        if tuple(record["features"]) != FEATURES:
            raise ValueError(
                f"{path / HEAD_FILE}: features {record['features']} are not this version's {list(FEATURES)}; "
                "re-run the reward_model stage"
            )
        policy_dir = Path(path) / POLICY_DIR
        loaded = shared[1:] if shared is not None and same_weights(policy_dir, shared[0]) else None
        reward = cls.build(classifier, tokenizer, policy_dir, AgentConfig(**record["agent"]), loaded)
        reward.head = Head(**{k: record[k] for k in ("mean", "std", "weights", "bias")})
        return reward

    def features(
        self, prompts: Sequence[str], completions: Sequence[str], *, max_len: int, batch_size: int = 16
    ) -> np.ndarray:
        """(rows, len(FEATURES)) features of each (state prompt, action text); module docstring."""
        from lamops.train.reward import score as classifier_score

        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        out = np.zeros((len(prompts), len(FEATURES)), dtype=np.float64)
        if not prompts:
            return out
        out[:, 0] = classifier_score(
            self.classifier, self.tokenizer, prompts, completions, max_len=max_len, batch_size=batch_size
        )
        out[:, 1:-2] = self._margins(prompts, completions, max_len, batch_size)
        missing = sorted({p for p in prompts if p not in self.greedy})
        size = self.agent.config.batch_size
        with _bar(len(missing), "reward model: greedy decode of the states") as bar:
            for start in range(0, len(missing), size):
                chunk = missing[start : start + size]
                for prompt, decoded in zip(chunk, self.agent.act_prompts(chunk), strict=True):
                    self.greedy[prompt] = action_fields(decoded.text)
                bar.update(len(chunk))
        for row, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            mine, greedy = action_fields(completion), self.greedy[prompt]
            if mine is not None and greedy is not None:
                out[row, -2] = float(mine == greedy)
                out[row, -1] = float(mine[2:4] == greedy[2:4])
        return out

    def _margins(
        self, prompts: Sequence[str], completions: Sequence[str], max_len: int, batch_size: int
    ) -> np.ndarray:
        """`unreachable` and the per-part margin features, from teacher-forced forwards of the policy."""
        import torch

        from lamops.agents.constraints import constraints_from_prompt
        from lamops.agents.decoding import choice_scores, teacher_forced
        from lamops.agents.prompt import fit_prompt
        from lamops.agents.vocab import continuation_ids
        from lamops.train.reward import collate_reward

        decoder = self.agent.decoder
        tokenizer, vocab = decoder.tokenizer, decoder.vocab
        out = np.zeros((len(prompts), 1 + 4 * len(PARTS)), dtype=np.float64)
        items = []
        for row, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            tokens = continuation_ids(tokenizer, completion)[: max_len - 2]
            try:
                constraints = self.agent.with_plans([constraints_from_prompt(prompt)])[0]
                choices = teacher_forced(decoder.cursor(constraints), tokens)
            except ValueError:  # not an observation prompt: nothing the grammar could write
                choices = None
            if choices is None:
                out[row, 0] = 1.0  # unreachable; its margins stay 0
                continue
            ids, _ = fit_prompt(tokenizer, prompt, max_len - len(tokens) - 1)
            items.append((row, [tokenizer.bos_token_id, *ids], tokens, choices))
        items.sort(key=lambda item: len(item[1]) + len(item[2]))  # similar lengths batch with less padding
        device = decoder.device
        with torch.inference_mode(), _bar(len(items), "reward model: teacher-forced features") as bar:
            for start in range(0, len(items), batch_size):
                chunk = items[start : start + batch_size]
                batch = collate_reward([{"input_ids": p + t} for _, p, t, _ in chunk], decoder.pad_id)
                logits = (
                    decoder.model(
                        input_ids=batch["input_ids"].to(device),
                        attention_mask=batch["attention_mask"].to(device),
                    )
                    .logits.float()
                    .cpu()
                )
                bar.update(len(chunk))
                for r, (i, prompt_ids, tokens, choices) in enumerate(chunk):
                    parts = choice_parts([vocab.bytes[t] for t in tokens], [c.position for c in choices])
                    margins: list[list[float]] = [[] for _ in PARTS]
                    logps: list[list[float]] = [[] for _ in PARTS]
                    for choice, part in zip(choices, parts, strict=True):
                        at = len(prompt_ids) + choice.position  # the token's index; its logits at at - 1
                        logp = torch.log_softmax(choice_scores(logits[r, at - 1], choice), -1)
                        chosen = float(logp[tokens[choice.position]])
                        margins[part].append(chosen - float(logp.max()))
                        logps[part].append(chosen)
                    for p in range(len(PARTS)):
                        m = np.asarray(margins[p] or [0.0])
                        out[i, 1 + 4 * p : 5 + 4 * p] = (
                            m.sum(),
                            m.min(),
                            float((m < -1e-9).sum()),
                            float(np.sum(logps[p] or [0.0])),
                        )
        return out

    def score(
        self, prompts: Sequence[str], completions: Sequence[str], *, max_len: int, batch_size: int = 16
    ) -> np.ndarray:
        """The reward model's score of each (prompt, completion): the head's tanh(z / 2), float64."""
        if self.head is None:
            raise ValueError("this GrammarReward has no head yet: fit_head on its features first")
        return self.head.scores(self.features(prompts, completions, max_len=max_len, batch_size=batch_size))


def load_reward_model(path: Path, *, shared: tuple[Path, Any, Any] | None = None) -> tuple[Any, Any]:
    """The reward model of the `reward_model` stage's folder and its tokenizer: a `GrammarReward` when the
    folder has the head (`HEAD_FILE`), else its classifier alone (`lamops.train.reward.load_reward_model`).
    `shared`: a frozen (folder, model, tokenizer) the head may use as its policy (`GrammarReward.load`)."""
    from lamops.train.reward import load_reward_model as load_classifier

    classifier, tokenizer = load_classifier(path)
    if (Path(path) / HEAD_FILE).is_file():
        return GrammarReward.load(path, classifier, tokenizer, shared), tokenizer
    return classifier, tokenizer


def score(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    *,
    max_len: int,
    batch_size: int = 16,
) -> np.ndarray:
    """The score of each (prompt, completion) by `load_reward_model`'s reward model: a `GrammarReward`'s
    head, or a classifier's score (`lamops.train.reward.score`); float64, in the order given."""
    from lamops.train.reward import score as classifier_score

    if isinstance(model, GrammarReward):
        return model.score(prompts, completions, max_len=max_len, batch_size=batch_size)
    return classifier_score(model, tokenizer, prompts, completions, max_len=max_len, batch_size=batch_size)


def same_weights(folder: Path, other: Path) -> bool:
    """Whether `folder`'s weight files (`*.safetensors`) are `other`'s very files (the same inodes: hard
    links) and its config the same text; a copy, however equal, says no (comparing bytes costs a read)."""
    import os.path

    weights = sorted(Path(folder).glob("*.safetensors"))
    try:
        return (
            bool(weights)
            and all(os.path.samefile(w, Path(other) / w.name) for w in weights)
            and (Path(folder) / "config.json").read_text() == (Path(other) / "config.json").read_text()
        )
    except OSError:
        return False


def _bar(total: int, desc: str):
    """A progress bar over a scoring pass big enough to wait for (PPO's batches of a few rows get none)."""
    from tqdm import tqdm

    from lamops.progress import progress

    return progress(None, desc, total=total) if total >= 256 else tqdm(total=total, disable=True)


def publish(classifier_dir: Path, policy_dir: Path, head: Head, agent: AgentConfig, out_dir: Path) -> Path:
    """Replace `out_dir` whole (`io.replace_dir`) by the classifier's files, `policy/` (the policy's folder)
    and `HEAD_FILE`; files are hard-linked where the filesystem allows, else copied."""
    from lamops.io import replace_dir, write_json

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    classifier_dir, policy_dir, out_dir = Path(classifier_dir), Path(policy_dir), Path(out_dir)
    with replace_dir(out_dir) as staging:
        for item in classifier_dir.iterdir():
            if item.name in (POLICY_DIR, HEAD_FILE):
                continue
            if item.is_dir():
                shutil.copytree(item, staging / item.name, copy_function=link)
            else:
                link(str(item), str(staging / item.name))
        shutil.copytree(policy_dir, staging / POLICY_DIR, copy_function=link)
        write_json(
            staging / HEAD_FILE,
            {
                "features": list(FEATURES),
                "mean": head.mean,
                "std": head.std,
                "weights": head.weights,
                "bias": head.bias,
                "agent": agent.model_dump(mode="json"),
            },
        )
    return out_dir
