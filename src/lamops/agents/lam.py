"""The LAM agent: the paper's AppAgent driven by our trained causal LM, with grammar-constrained decoding.

`LAMAgent.act` turns observations into actions in one batched decode (`lamops.agents.decoding`);
`act_prompts` does the same from stored prompt strings (teacher-forced evaluation). `run_episodes` plays
tasks in an environment, `batch_size` episodes in lockstep (one decode per round for all live episodes; a
finished episode's slot takes the next one), and records each episode as a `Trajectory` exactly as the
expert does, so a successful LAM episode becomes SFT rows of the same format. `rollouts` spreads episodes
over Ray actors that each load the model from its `save_pretrained` folder.

Determinism: sampled episodes draw from a generator seeded by (seed, task id, attempt), and episodes are
grouped into fixed shards of `SHARD_BATCHES x batch_size` episodes in task order, each shard played in
lockstep by one worker. The batches a shard's decodes see do not depend on how many workers there are, so
`rollouts` gives the same trajectories for the same seed with any number of workers (batched float
arithmetic depends on who shares a batch, and greedy decoding would follow any near-tie it flips).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from lamops.agents.constraints import Constraints, constraints_from_observation, constraints_from_prompt
from lamops.agents.decoding import ConstrainedDecoder, Decoded
from lamops.agents.grammar import Limits
from lamops.agents.plans import PlanLibrary
from lamops.env.observation import CanvasView, ControlFormat, ControlTypes, Observation, PromptView
from lamops.records import InstantiatedTask, Trajectory, TrajectoryStep

log = logging.getLogger(__name__)

SHARD_BATCHES = 4  # lockstep batches' worth of episodes per shard (see the module docstring)
ACTION_FIELDS = ("thought", "control_name", "control_label", "function", "args", "status", "plan")


class AgentConfig(BaseModel):
    """How the LAM agent decodes and how long its episodes may run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_len: int = Field(
        default=1024, ge=32, description="Longest model input (prompt + action) in tokens, as in training."
    )
    max_new_tokens: int = Field(
        default=160,
        ge=16,
        description="Most tokens of one action (the SFT data's longest is ~150); the prompt is fitted into "
        "max_len - max_new_tokens - 1, and an action reaching it is closed by force.",
    )
    max_thought_tokens: int = Field(default=40, ge=1, description="Token cap of the thought.")
    max_plan_items: int = Field(default=10, ge=0, description="Most items of the plan list.")
    max_plan_item_tokens: int = Field(default=48, ge=1, description="Token cap of one plan item.")
    max_arg_tokens: int = Field(
        default=24, ge=1, description="Token cap of a string argument (span, keys or summary text)."
    )
    temperature: float = Field(
        default=0.0, ge=0, description="0: greedy; above 0: sampling at this temperature (self_boost)."
    )
    copy_plan: bool = Field(
        default=True,
        description="Offer the previous plan's copies (thought, status, plan list) as whole continuations "
        "(lamops.agents.decoding, 'Copies'); False: plain constrained decoding, for comparison.",
    )
    copy_bonus: float = Field(
        default=8.0,
        ge=0,
        description="Nats added to the preferred copy's first token (inf: always copy when one is offered). "
        "Measured on the default run's LAM2, 160 test steps (bench/decode_copy.py): SSR 80.6 at 8, 81.2 "
        "always, 29.4 without copies.",
    )
    plan_library: bool = Field(
        default=True,
        description="At a first step, offer the nearest training task's first step (the model folder's "
        "plan_library.jsonl, adapted to the request) as copies (lamops.agents.plans); False: the model "
        "alone. Measured on the default recipe's LAM2, 64 test tasks: online TSR 57.8 with it, 3.1 without.",
    )
    control_format: ControlFormat = Field(
        default="compact", description="How the observation lists controls; must be the training format."
    )
    control_types: ControlTypes = Field(
        default="ambiguous", description="Which controls show their type; must be the training setting."
    )
    canvas: CanvasView = Field(
        default="window", description="Canvas window or whole document; must be the training setting."
    )
    batch_size: int = Field(default=8, ge=1, description="Episodes (or prompts) decoded in lockstep.")
    max_steps: int = Field(default=30, ge=1, description="Step limit of an episode.")

    def view(self) -> PromptView:
        """How this agent renders observations into prompts (the env settings its model was trained with)."""
        return PromptView(
            control_format=self.control_format, control_types=self.control_types, canvas=self.canvas
        )

    def limits(self) -> Limits:
        return Limits(
            thought_tokens=self.max_thought_tokens,
            plan_items=self.max_plan_items,
            plan_item_tokens=self.max_plan_item_tokens,
            arg_tokens=self.max_arg_tokens,
        )


Generators = torch.Generator | Sequence[torch.Generator | None] | None


class LAMAgent:
    """A causal LM acting through the constrained decoder."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        config: AgentConfig | None = None,
        plans: PlanLibrary | None = None,
    ):
        """`plans`: the model folder's plan library (`PlanLibrary.load`), used when `config.plan_library`."""
        self.config = config or AgentConfig()
        self.plans = plans if self.config.plan_library and plans else None
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.decoder = ConstrainedDecoder(
            model,
            tokenizer,
            max_len=self.config.max_len,
            max_new_tokens=self.config.max_new_tokens,
            limits=self.config.limits(),
            copy_bonus=self.config.copy_bonus if self.config.copy_plan else None,
        )

    def act(self, observations: Sequence[Observation], generator: Generators = None) -> list[Decoded]:
        """One action per observation. `generator`: one for all rows, or one per row (sampling only)."""
        view = self.config.view()
        prompts = [o.prompt(view) for o in observations]
        return self.act_prompts(
            prompts, [constraints_from_observation(o, view) for o in observations], generator
        )

    def act_prompts(
        self,
        prompts: Sequence[str],
        constraints: Sequence[Constraints] | None = None,
        generator: Generators = None,
        record: bool = False,
    ) -> list[Decoded]:
        """One action per stored observation prompt; constraints are read from the prompts unless given.
        Decodes `batch_size` prompts at a time; `record`: with token ids and choices (`decode`)."""
        if constraints is None:
            constraints = [constraints_from_prompt(p) for p in prompts]
        constraints = self.with_plans(constraints)
        if generator is None or isinstance(generator, torch.Generator):
            gens = [generator] * len(prompts)
        else:
            gens = list(generator)
        if not (len(prompts) == len(constraints) == len(gens)):
            raise ValueError(
                f"{len(prompts)} prompts, {len(constraints)} constraints, {len(gens)} generators"
            )
        out: list[Decoded] = []
        size = self.config.batch_size
        for start in range(0, len(prompts), size):
            out += self.decoder.decode(
                prompts[start : start + size],
                constraints[start : start + size],
                temperature=self.config.temperature,
                generators=gens[start : start + size],
                record=record,
            )
        return out

    def with_plans(self, constraints: Sequence[Constraints]) -> list[Constraints]:
        """`constraints`, each first step's (no previous plan) given the plan library's proposal for its
        request as the previous plan the decoder may copy; unchanged without a library."""
        first = [i for i, c in enumerate(constraints) if not c.previous_plan]
        out = list(constraints)
        if self.plans is None or not first:
            return out
        proposals = self.plans.propose([constraints[i].request for i in first])
        for i, items in zip(first, proposals, strict=True):
            out[i] = replace(constraints[i], previous_plan=items)
        return out


# ---------------------------------------------------------------------------------------------- episodes


class StepTiming(BaseModel):
    """Where one step's time went. In lockstep the decode is shared: its seconds are the batch's."""

    forward_s: float = Field(description="Model forward passes of the step's decode.")
    decode_s: float = Field(description="The whole decode call (forward + grammar + tokenizer).")
    env_s: float = Field(description="The environment executing the action.")
    forward_passes: int
    generated_tokens: int
    forced_tokens: int
    closed_by_force: bool


# Called after each executed step with the episode's task, the step as recorded and its timing.
StepHook = Callable[[InstantiatedTask, TrajectoryStep, StepTiming], None]


class EpisodeTiming(BaseModel):
    task_id: str
    attempt: int
    seconds: float = Field(description="Reset to verdict, waiting for lockstep partners included.")
    steps: list[StepTiming]


def episode_seed(seed: int, task_id: str, attempt: int) -> int:
    """The seed of one episode's sampling generator: a pure function of (seed, task id, attempt)."""
    digest = hashlib.sha256(f"{seed}\0{task_id}\0{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class _Episode:
    index: int
    task: InstantiatedTask
    attempt: int
    env: Any
    generator: torch.Generator
    obs: Observation | None = None
    start: float = 0.0
    steps: list[TrajectoryStep] = field(default_factory=list)
    timings: list[StepTiming] = field(default_factory=list)
    error: str | None = None


def run_episodes(
    agent: LAMAgent,
    tasks: Sequence[InstantiatedTask],
    env_factory: Callable[[], Any],
    *,
    attempts: int = 1,
    seed: int = 0,
    agent_name: str = "lam",
    timings: list[EpisodeTiming] | None = None,
    on_step: StepHook | None = None,
) -> list[Trajectory]:
    """Play every task `attempts` times, `agent.config.batch_size` episodes in lockstep.

    Trajectories come in (task, attempt) order. An episode ends when the agent says FINISH, the environment
    says done, or after `max_steps` steps; refused actions are failed steps (the episode goes on). Each
    episode is verified with `env.verify()`. `env_factory()` makes one environment per lockstep slot
    (reset for each episode it plays). Per-episode timings are appended to `timings` when given;
    `on_step(task, step, timing)` is called after each executed step (to show or time it as it happens)."""
    episodes = [(task, a) for task in tasks for a in range(attempts)]
    results: list[Trajectory | None] = [None] * len(episodes)
    found: list[EpisodeTiming | None] = [None] * len(episodes)
    config = agent.config
    slots: list[_Episode | None] = [None] * min(config.batch_size, len(episodes))
    envs = [env_factory() for _ in slots]
    upcoming = 0
    while True:
        for s, current in enumerate(slots):
            while current is None and upcoming < len(episodes):
                task, attempt = episodes[upcoming]
                gen = torch.Generator().manual_seed(episode_seed(seed, task.task_id, attempt))
                current = _Episode(upcoming, task, attempt, envs[s], gen, start=time.perf_counter())
                upcoming += 1
                try:
                    current.obs = current.env.reset(task)
                except Exception as e:  # a task the environment cannot start: record it, go on
                    current.error = f"reset failed: {type(e).__name__}: {e}"
                    results[current.index], found[current.index] = _close(current, agent_name, config)
                    current = None
            slots[s] = current
        live = [(s, e) for s, e in enumerate(slots) if e is not None]
        if not live:
            break
        decoded = agent.act([e.obs for _, e in live], [e.generator for _, e in live])
        for (s, e), d in zip(live, decoded, strict=True):
            if _step(e, d, config, on_step):
                results[e.index], found[e.index] = _close(e, agent_name, config)
                slots[s] = None
    if timings is not None:
        timings.extend(found)
    return results


def _step(e: _Episode, d: Decoded, config: AgentConfig, on_step: StepHook | None = None) -> bool:
    """Execute one decoded action in the episode's environment and record it; True when the episode ends."""
    prompt = e.obs.prompt(config.view())
    result = e.env.step(d.action if d.action is not None else d.text)
    fields = {k: d.action[k] for k in ACTION_FIELDS} if d.action is not None else {"function": ""}
    e.steps.append(
        TrajectoryStep(
            step=len(e.steps) + 1,
            prompt=prompt,
            ok=result.ok,
            result=result.result,
            latency=result.latency,
            **fields,
        )
    )
    e.timings.append(
        StepTiming(
            forward_s=d.forward_s,
            decode_s=d.total_s,
            env_s=result.latency,
            forward_passes=d.forward_passes,
            generated_tokens=d.generated_tokens,
            forced_tokens=d.forced_tokens,
            closed_by_force=d.closed_by_force,
        )
    )
    if on_step is not None:
        on_step(e.task, e.steps[-1], e.timings[-1])
    if result.observation is not None:
        e.obs = result.observation
    if d.action is not None and d.action["status"] == "FINISH":
        return True
    if result.done or len(e.steps) >= config.max_steps:  # the environment's step budget, or ours
        e.error = f"stopped after {len(e.steps)} steps without FINISH"
        return True
    return False


def _close(e: _Episode, agent_name: str, config: AgentConfig) -> tuple[Trajectory, EpisodeTiming]:
    verdict = None
    if e.obs is not None:
        try:
            verdict = e.env.verify()
        except Exception as err:  # a verifier failure is this episode's, not the run's
            log.exception("verifying %s failed", e.task.task_id)
            e.error = e.error or f"verify failed: {type(err).__name__}: {err}"
    seconds = time.perf_counter() - e.start
    trajectory = Trajectory(
        task=e.task,
        agent=agent_name,
        steps=e.steps,
        verdict=verdict,
        error=e.error,
        seconds=seconds,
        final_prompt=e.obs.prompt(config.view()) if e.obs is not None else "",
    )
    timing = EpisodeTiming(task_id=e.task.task_id, attempt=e.attempt, seconds=seconds, steps=e.timings)
    return trajectory, timing


# ---------------------------------------------------------------------------------------------- rollouts


class RolloutWorker:
    """Loads the model once and plays shards of episodes (in-process, or inside a Ray actor)."""

    def __init__(
        self,
        model_dir: str,
        templates: dict[str, bytes],
        config: dict,
        agent_name: str,
        threads: int | None,
    ):
        from lamops.env.word import WordEnv
        from lamops.models.factory import make_model
        from lamops.settings import ModelSpec

        if threads:
            torch.set_num_threads(threads)
        model, tokenizer = make_model(ModelSpec(source="pretrained", path=str(model_dir)))
        self.config = AgentConfig.model_validate(config)
        self.agent = LAMAgent(model, tokenizer, self.config, PlanLibrary.load(Path(model_dir)))
        self.agent_name = agent_name
        self.env_factory = lambda: WordEnv(
            templates, max_steps=self.config.max_steps, view=self.config.view()
        )

    def run_shards(
        self, shards: list[tuple[list[InstantiatedTask], int, int]]
    ) -> list[tuple[list[str], list[str]]]:
        """Each shard is (tasks, attempts, seed); the answer is, per shard, its trajectories and episode
        timings as JSON."""
        out = []
        for tasks, attempts, seed in shards:
            timings: list[EpisodeTiming] = []
            trajectories = run_episodes(
                self.agent,
                tasks,
                self.env_factory,
                attempts=attempts,
                seed=seed,
                agent_name=self.agent_name,
                timings=timings,
            )
            out.append(([t.model_dump_json() for t in trajectories], [t.model_dump_json() for t in timings]))
        return out


def shards_of(
    tasks: Sequence[InstantiatedTask], attempts: int, batch_size: int
) -> list[list[InstantiatedTask]]:
    """Consecutive groups of tasks of about SHARD_BATCHES x batch_size episodes each (a task's attempts stay
    together); the grouping depends on the tasks and the config only, never on the number of workers."""
    per = max(1, math.ceil(SHARD_BATCHES * batch_size / max(1, attempts)))
    return [list(tasks[i : i + per]) for i in range(0, len(tasks), per)]


def rollouts(
    model_dir: Path | str,
    tasks: Sequence[InstantiatedTask],
    *,
    templates_dir: Path,
    attempts: int,
    workers: int,
    config: AgentConfig,
    seed: int,
    agent_name: str,
    timings: list[EpisodeTiming] | None = None,
) -> list[Trajectory]:
    """Play every task `attempts` times with the model saved in `model_dir`, on `workers` Ray actors
    (0: in this process), each with torch threads set to its share of the CPUs. Trajectories come in
    (task, attempt) order and are the same for any `workers`; episode timings go to `timings` when given
    (none for the episodes of a shard whose worker kept dying)."""
    from lamops.compute import LOST, WorkerPool
    from lamops.env.templates import load_library

    if workers < 0 or attempts < 1:
        raise ValueError(f"rollouts: workers must be >= 0 and attempts >= 1 (got {workers}, {attempts})")
    if not tasks:
        return []
    library = load_library(Path(templates_dir))
    templates = {name: info.path.read_bytes() for name, info in library.items()}
    shards = shards_of(tasks, attempts, config.batch_size)
    threads = None
    if workers:
        import ray

        from lamops.compute import ensure_ray

        ensure_ray()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        threads = max(1, cpus // min(workers, max(1, len(shards))))
    args = (str(model_dir), templates, config.model_dump(), agent_name, threads)
    done: dict[int, list[Trajectory]] = {}
    timed: dict[int, list[EpisodeTiming]] = {}

    from lamops.progress import progress

    bar = progress(None, f"{agent_name} rollouts", total=len(tasks) * attempts)

    def on_result(index: int, batch: list, result: list[tuple[list[str], list[str]]]) -> None:
        bar.update(sum(len(item[0]) * attempts for item in batch))
        for k, (texts, times) in enumerate(result):
            done[index + k] = [Trajectory.model_validate_json(t) for t in texts]
            timed[index + k] = [EpisodeTiming.model_validate_json(t) for t in times]

    def on_lost(index: int, shard: tuple, why: str) -> None:
        bar.update(len(shard[0]) * attempts)
        log.error("rollout shard %d lost: %s", index, why)
        done[index] = [
            Trajectory(task=task, agent=agent_name, error=f"{LOST}: {why}")
            for task in shard[0]
            for _ in range(attempts)
        ]

    items = [(shard, attempts, seed) for shard in shards]
    with bar, WorkerPool(RolloutWorker, args, min(workers, len(shards)), dedicated=True) as pool:
        pool.map("run_shards", items, batch_size=1, on_result=on_result, on_lost=on_lost)
    if timings is not None:
        timings.extend(t for i in range(len(shards)) for t in timed.get(i, []))
    return [t for i in range(len(shards)) for t in done[i]]
