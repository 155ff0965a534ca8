"""The LAM agent in the real WordEnv: lockstep episodes recorded like the expert's, and rollouts that give the
same trajectories in-process and on Ray for the same seed."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_spec

from lamops.agents.expert import ExpertAgent
from lamops.agents.lam import (
    AgentConfig,
    EpisodeTiming,
    LAMAgent,
    episode_seed,
    rollouts,
    run_episodes,
    shards_of,
)
from lamops.env.actions import parse_action
from lamops.env.word import WordEnv
from lamops.models.factory import build_tiny, save
from lamops.models.tokenizer import train_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")
CONFIG = AgentConfig(
    max_len=768,
    max_new_tokens=96,
    max_thought_tokens=8,
    max_plan_items=2,
    max_plan_item_tokens=6,
    max_arg_tokens=6,
    batch_size=2,
    max_steps=3,
)


@pytest.fixture(scope="module")
def tasks():
    from lamops.env.families import applicable_templates, sample_task

    names = ("emphasize_phrase", "indent_paragraph", "insert_table")
    return [sample_task(f, applicable_templates(f)[0], 0) for f in names]


@pytest.fixture(scope="module")
def tokenizer(tasks, tmp_path_factory):
    env = WordEnv()
    steps = [s for t in tasks for s in ExpertAgent().run(env, t, verify=False).steps]
    texts = [x for s in steps for x in (s.prompt, s.completion())]
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok") / "tokenizer", vocab_size=1024)


@pytest.fixture(scope="module")
def model(tokenizer):
    return build_tiny(tiny_spec(), tokenizer).eval()


@pytest.fixture(scope="module")
def model_dir(model, tokenizer, tmp_path_factory):
    return save(model, tokenizer, tmp_path_factory.mktemp("lam") / "model")


@pytest.fixture(scope="module")
def templates_dir(tmp_path_factory):
    from lamops.env.templates import build_library

    path = tmp_path_factory.mktemp("templates")
    build_library(path)
    return path


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray of 2 CPUs (as tests/data/conftest.py's), shut down if this fixture started it."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def without_timing(trajectories) -> list[dict]:
    out = []
    for t in trajectories:
        d = t.model_dump()
        d["seconds"] = 0.0
        for s in d["steps"]:
            s["latency"] = 0.0
        out.append(d)
    return out


def test_agent_config_is_frozen_and_strict():
    with pytest.raises(ValueError, match="Extra inputs"):
        AgentConfig(max_length=3)
    with pytest.raises(ValueError, match="frozen"):
        CONFIG.batch_size = 3  # type: ignore[misc]
    assert AgentConfig().max_len == 1024 and AgentConfig().max_steps == 30


def test_run_episodes_records_verified_trajectories_like_the_expert(model, tokenizer, tasks):
    agent = LAMAgent(model, tokenizer, CONFIG.model_copy(update={"temperature": 1.0}))
    timings: list[EpisodeTiming] = []
    trajectories = run_episodes(
        agent,
        tasks,
        lambda: WordEnv(max_steps=CONFIG.max_steps),
        attempts=2,
        seed=7,
        agent_name="lam2",
        timings=timings,
    )
    assert [(t.task.task_id, t.agent) for t in trajectories] == [
        (task.task_id, "lam2") for task in tasks for _ in range(2)
    ]
    assert [(t.task_id, t.attempt) for t in timings] == [
        (task.task_id, a) for task in tasks for a in range(2)
    ]
    failed = 0
    for traj, timing in zip(trajectories, timings, strict=True):
        assert traj.verdict is not None and traj.verdict.complete in ("yes", "no", "unsure")
        assert 1 <= len(traj.steps) <= CONFIG.max_steps and len(timing.steps) == len(traj.steps)
        for k, step in enumerate(traj.steps, 1):
            assert step.step == k and step.prompt.startswith("<Available Control Item:>\n")
            parse_action(step.completion())  # each step is an SFT row of the training format
            failed += not step.ok
            assert step.status == "CONTINUE" or k == len(traj.steps)  # FINISH ends the episode
        if traj.steps[-1].status == "CONTINUE":
            assert traj.error == f"stopped after {CONFIG.max_steps} steps without FINISH"
        assert traj.final_prompt.startswith("<Available Control Item:>\n")
        assert all(s.forward_passes >= 1 and s.forward_s <= s.decode_s for s in timing.steps)
    assert failed > 0  # a random model's refused actions are failed steps, not exceptions
    # The first prompt of every episode is the environment's first observation.
    env = WordEnv()
    assert trajectories[0].steps[0].prompt == env.reset(tasks[0]).prompt()


def test_act_prompts_decodes_stored_prompts_like_observations(model, tokenizer, tasks):
    agent = LAMAgent(model, tokenizer, CONFIG)
    env = WordEnv()
    observations = [env.reset(t) for t in tasks]
    from_obs = agent.act(observations)
    from_prompts = agent.act_prompts([o.prompt() for o in observations])
    assert [d.text for d in from_obs] == [d.text for d in from_prompts]
    assert all(json.loads(d.text) == d.action for d in from_obs)


def test_shards_and_seeds_do_not_depend_on_workers(tasks):
    assert shards_of(tasks * 4, attempts=2, batch_size=2) == [(tasks * 4)[i : i + 4] for i in (0, 4, 8)]
    assert episode_seed(0, "a", 1) == episode_seed(0, "a", 1) != episode_seed(0, "a", 2)


def test_rollouts_are_the_same_in_process_and_on_ray(model_dir, templates_dir, tasks, ray_local):
    config = CONFIG.model_copy(update={"temperature": 1.0, "batch_size": 1})  # shards of 4 episodes
    kwargs = {"templates_dir": templates_dir, "attempts": 2, "config": config, "agent_name": "lam3"}
    serial = rollouts(model_dir, tasks, workers=0, seed=3, **kwargs)
    timings: list[EpisodeTiming] = []
    on_ray = rollouts(model_dir, tasks, workers=2, seed=3, timings=timings, **kwargs)
    assert len(serial) == len(tasks) * 2 == len(timings)
    assert without_timing(serial) == without_timing(on_ray)
    other_seed = rollouts(model_dir, tasks, workers=0, seed=4, **kwargs)
    assert without_timing(other_seed) != without_timing(serial)


def test_first_steps_copy_the_plan_library(model, tokenizer, tasks):
    """With a library of the expert's first steps, the first step writes the nearest entry's thought and plan
    (adapted to the request) where the model agrees (always, at copy_bonus inf); later steps are untouched."""
    from lamops.agents.constraints import constraints_from_observation
    from lamops.agents.plans import PlanLibrary
    from lamops.records import StepSFTRow

    env = WordEnv()
    rows = [
        StepSFTRow(task_id=t.task_id, step=s.step, prompt=s.prompt, completion=s.completion())
        for t in tasks
        for s in ExpertAgent().run(env, t, verify=False).steps
    ]
    library = PlanLibrary.from_rows(rows)
    firsts = [json.loads(r.completion) for r in rows if r.step == 1]
    assert len(library) == len(tasks) and library.items[0] == (
        "1. " + firsts[0]["thought"],
        *firsts[0]["plan"],
    )
    always = CONFIG.model_copy(update={"copy_bonus": float("inf"), "max_plan_items": 10})
    observations = [env.reset(t) for t in tasks]
    decoded = LAMAgent(model, tokenizer, always, library).act(observations)
    assert [(d.action["thought"], d.action["plan"]) for d in decoded] == [
        (f["thought"], f["plan"]) for f in firsts
    ]
    off = LAMAgent(model, tokenizer, always.model_copy(update={"plan_library": False}), library)
    assert off.plans is None
    later = constraints_from_observation(observations[0])
    later = type(later)(**{**later.__dict__, "previous_plan": ("2. Click Center.",)})
    assert LAMAgent(model, tokenizer, always, library).with_plans([later]) == [later]
