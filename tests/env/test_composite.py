"""Composite tasks (evolved: several families in one request): combinable parts, composed plans, verdicts."""

import random

import pytest

from lamops.agents.expert import ExpertAgent
from lamops.env.families import FAMILIES, get_family, sample_task
from lamops.env.families.composite import combinable, compose
from lamops.env.templates import TEMPLATES
from lamops.env.word import WordEnv


def composites(n: int, seed: int = 0):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        template = rng.choice(list(TEMPLATES))
        a, b = rng.sample(list(FAMILIES), 2)
        parts = [
            sample_task(a, template, rng.randrange(10**6)),
            sample_task(b, template, rng.randrange(10**6)),
        ]
        if None in parts:
            continue
        for order in (parts, parts[::-1]):
            if combinable(order):
                out.append(compose(order, f"c-{len(out)}"))
                break
    return out


@pytest.fixture(scope="module")
def env():
    env = WordEnv()
    yield env
    env.close()


def test_reference_plans_of_composites_succeed(env):
    expert = ExpertAgent()
    for task in composites(40):
        traj = expert.run(env, task)
        assert traj.success, (task.request, traj.error, traj.verdict.reason)
        assert {k.split(".")[0] for k in traj.verdict.sub_scores if k.startswith("part")} == {
            "part1",
            "part2",
        }


def test_a_composite_fails_when_one_part_is_not_done(env):
    task = composites(1, seed=3)[0]
    half = task.model_copy(update={"action_plan": task.action_plan[: len(task.action_plan) // 2]})
    traj = ExpertAgent().run(env, half)
    assert not traj.success


def test_combinable_rules():
    bold = sample_task("highlight_phrase", "plain_text", 1)
    again = sample_task("highlight_phrase", "plain_text", 1)
    assert not combinable([bold, again])  # same scope
    other_template = sample_task("highlight_phrase", "table_report", 1)
    assert not combinable([bold, other_template])
    assert not combinable([bold])
    composite = get_family("composite")
    with pytest.raises(ValueError, match="parts"):
        composite.scope({"parts": []})
