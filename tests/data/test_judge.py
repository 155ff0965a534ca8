"""The judge stage: the verifier as in a live episode, the judge role for family-less tasks, routing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lamops.agents.expert import ExpertAgent
from lamops.data.execute import execute_tasks
from lamops.data.judge import JUDGED_FILE, NO_FAMILY, control_state, judge_trajectories
from lamops.env.observation import PromptView
from lamops.env.templates import load_library
from lamops.env.word import WordEnv
from lamops.records import InstantiatedTask, ResultRecord, Trajectory, Verdict
from lamops.roles.protocols import JudgeInput


class RecordingJudge:
    """A judge role that answers unsure and keeps what it was shown."""

    def __init__(self):
        self.cases: list[JudgeInput] = []

    def judge(self, case: JudgeInput) -> Verdict:
        self.cases.append(case)
        return Verdict(complete="unsure", reason="fake judge", task_quality="good")


def failing_variants(tasks: list[InstantiatedTask]) -> list[InstantiatedTask]:
    """Episodes that end in "no": a plan missing its last step, and one naming a control that is not there."""
    short = [
        t.model_copy(update={"task_id": f"{t.task_id}-short", "action_plan": t.action_plan[:-1]})
        for t in tasks[:20:4]
        if len(t.action_plan) > 1
    ]
    t = tasks[1]
    bad_step = t.action_plan[-1].model_copy(update={"control_text": "Sparkle Button"})
    bad = t.model_copy(update={"task_id": f"{t.task_id}-bad", "action_plan": [*t.action_plan[:-1], bad_step]})
    return [*short, bad]


@pytest.fixture(scope="module")
def episodes(tmp_path_factory, template_library, family_tasks):
    """The execute stage's folder for every family's task, plus failing variants and one family-less task."""
    emphasize = next(t for t in family_tasks if t.family == "emphasize_phrase")
    foreign = emphasize.model_copy(update={"task_id": "foreign-0", "family": None, "category": None})
    tasks = [*family_tasks, *failing_variants(family_tasks), foreign]
    out = tmp_path_factory.mktemp("judge") / "execute"
    summary = execute_tasks(
        tasks,
        out,
        templates_dir=template_library,
        workers=0,
        max_steps=30,
        view=PromptView(),
        min_score=80,
        progress=False,
    )
    assert summary.run == len(tasks)
    return out, tasks


@pytest.fixture(scope="module")
def judged(episodes, template_library, tmp_path_factory):
    out = tmp_path_factory.mktemp("judge") / "judged"
    role = RecordingJudge()
    summary = judge_trajectories(
        episodes[0], out, templates_dir=template_library, judge=role, workers=0, progress=False
    )
    return out, summary, role


def read_judged(out: Path) -> dict[str, Trajectory]:
    lines = (out / JUDGED_FILE).read_text().splitlines()
    return {t.task.task_id: t for t in (Trajectory.model_validate_json(line) for line in lines)}


def test_verifier_verdicts_match_env_verify(episodes, judged, template_library):
    _, tasks = episodes
    verdicts = read_judged(judged[0])
    library = load_library(template_library)
    env = WordEnv({name: info.path.read_bytes() for name, info in library.items()})
    outcomes = set()
    for task in tasks:
        if task.family is None:
            continue
        live = ExpertAgent().run(env, task)  # verify=True: the verdict of the live episode
        assert verdicts[task.task_id].verdict == live.verdict, task.task_id
        outcomes.add(live.verdict.complete)
    assert outcomes == {"yes", "no"}


def test_outputs_are_sorted_and_routed(episodes, judged):
    out, summary, _ = judged
    _, tasks = episodes
    ids = [json.loads(line)["task"]["task_id"] for line in (out / JUDGED_FILE).read_text().splitlines()]
    assert ids == sorted(t.task_id for t in tasks)
    assert summary.judged == len(tasks) == summary.pass_ + summary.fail + summary.unsure
    dumped = summary.model_dump()
    assert {dumped["pass"], dumped["fail"], dumped["unsure"]} and "pass_" not in dumped
    verdicts = read_judged(out)
    for route, complete in (("pass", "yes"), ("fail", "no"), ("unsure", "unsure")):
        lines = (out / "results" / f"{route}.jsonl").read_text().splitlines()
        records = [ResultRecord.model_validate_json(line) for line in lines]
        assert [r.unique_id for r in records] == sorted(r.unique_id for r in records)
        assert all(verdicts[r.unique_id].verdict.complete == complete for r in records)
        assert len(records) == dumped[route]
    assert summary.by_family[NO_FAMILY] == {"pass": 0, "fail": 0, "unsure": 1}
    assert summary.by_family["emphasize_phrase"]["pass"] == 1


def test_a_family_less_task_goes_to_the_judge_role(judged):
    out, _, role = judged
    [case] = role.cases
    assert case.request.startswith("Please set")
    assert case.canvas_before != case.canvas_after
    assert (
        case.canvas_diff.count("\n-p") == 1 and case.canvas_diff.count("\n+p") == 1
    )  # one paragraph changed
    assert "Bold" in case.controls_before and case.controls_before.splitlines()[-1].startswith("[ui]")
    assert case.controls_after.splitlines()[-1].startswith("[ui]")
    assert case.actions[0].startswith("1. select_text ") and all("-> ok:" in a for a in case.actions)
    assert read_judged(out)["foreign-0"].verdict.reason == "fake judge"


def test_control_state_reads_the_prompt():
    env = WordEnv()
    from lamops.env.families import sample_task

    prompt = env.reset(sample_task("emphasize_phrase", "plain_text", 0)).prompt(PromptView())
    state = control_state(prompt)
    assert state.splitlines()[0] == prompt.splitlines()[1]  # the first control
    assert "<" not in state and state.splitlines()[-1].startswith("[ui] ")


def test_missing_or_corrupt_documents_are_a_no(episodes, template_library, tmp_path):
    src, tasks = episodes
    exec_dir = tmp_path / "execute"
    shutil.copytree(src, exec_dir)
    gone, corrupt = tasks[0].task_id, tasks[1].task_id
    (exec_dir / "documents" / f"{gone}.docx").unlink()
    (exec_dir / "documents" / f"{corrupt}.docx").write_bytes(b"not a docx")
    summary = judge_trajectories(
        exec_dir,
        tmp_path / "out",
        templates_dir=template_library,
        judge=RecordingJudge(),
        workers=0,
        progress=False,
    )
    verdicts = read_judged(tmp_path / "out")
    assert verdicts[gone].verdict.complete == "no" and "cannot be read" in verdicts[gone].verdict.reason
    assert (
        verdicts[corrupt].verdict.complete == "no" and "does not reopen" in verdicts[corrupt].verdict.reason
    )
    assert summary.judged == len(tasks)


def test_failed_runs_are_a_no(family_tasks, template_library, tmp_path):
    unknown = family_tasks[0].model_copy(update={"task_id": "unknown-0", "template": "no_such"})
    execute_tasks(
        [unknown],
        tmp_path / "exec",
        templates_dir=template_library,
        workers=0,
        max_steps=30,
        view=PromptView(),
        min_score=80,
        progress=False,
    )
    judge_trajectories(
        tmp_path / "exec",
        tmp_path / "out",
        templates_dir=template_library,
        judge=RecordingJudge(),
        workers=0,
        progress=False,
    )
    [traj] = read_judged(tmp_path / "out").values()
    assert traj.verdict.complete == "no" and "no final document" in traj.verdict.reason
    assert "no_such" in traj.verdict.reason


@pytest.mark.parametrize("read_in_workers", [False, True], ids=["driver-reads", "ray-data-reads"])
def test_ray_judges_as_serial_does(ray_local, episodes, judged, template_library, tmp_path, read_in_workers):
    role = RecordingJudge()
    summary = judge_trajectories(
        episodes[0],
        tmp_path / "out",
        templates_dir=template_library,
        judge=role,
        workers=2,
        batch_size=4,
        progress=False,
        read_in_workers=read_in_workers,  # the cluster path: Ray Data reads trajectories and documents
    )
    assert summary.model_dump(exclude={"seconds"}) == judged[1].model_dump(exclude={"seconds"})
    assert [c.request for c in role.cases] == [c.request for c in judged[2].cases]  # the judge role's cases
    for name in (JUDGED_FILE, "results/pass.jsonl", "results/fail.jsonl", "results/unsure.jsonl"):
        assert (tmp_path / "out" / name).read_bytes() == (judged[0] / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["judged.jsonl", "results"]


def test_a_damaged_trajectory_file_is_named(episodes, template_library, tmp_path):
    exec_dir = tmp_path / "execute"
    shutil.copytree(episodes[0], exec_dir)
    (exec_dir / "trajectories" / "zz-damaged-0.json").write_text('{"task": {"task_id": "zz"}}')
    with pytest.raises(ValueError, match="zz-damaged-0.json: not a trajectory"):
        judge_trajectories(
            exec_dir, tmp_path / "out", templates_dir=template_library, judge=RecordingJudge(), workers=0
        )


def test_execute_and_judge_stages_on_a_cluster_write_what_the_embedded_run_wrote(
    ray_local, data_project, tmp_path, monkeypatch
):
    """With $RAY_ADDRESS set, the stages take the Ray Data path (the workers read tasks.jsonl, trajectories
    and documents); the small project's in-process run wrote the same bytes."""
    from helpers import copy_project
    from small_project import config

    import lamops.compute
    from lamops.stages import get_stage

    streamed = []

    def spy(*args, **kwargs):
        streamed.append(args[2])
        return stream_files(*args, **kwargs)

    stream_files = lamops.compute.stream_files
    monkeypatch.setattr(lamops.compute, "stream_files", spy)
    monkeypatch.setenv("RAY_ADDRESS", ray_local.get_runtime_context().gcs_address)
    root = copy_project(data_project, tmp_path / "project")
    cfg = config(root, "execute.workers=2", "judge.workers=2")
    executed, judged = cfg.path(cfg.execute.out_dir), cfg.path(cfg.judge.out_dir)
    shutil.rmtree(executed)
    get_stage("execute")(cfg)
    get_stage("judge")(cfg)
    assert streamed == ["run_lines", "judge_files"]
    for before, after in (
        (data_project / executed.relative_to(root), executed),
        (data_project / judged.relative_to(root), judged),
    ):
        files = sorted(
            p.relative_to(before) for p in before.rglob("*") if p.is_file() and p.name != "timings.jsonl"
        )
        assert files and files == sorted(
            p.relative_to(after) for p in after.rglob("*") if p.is_file() and p.name != "timings.jsonl"
        )
        for rel in files:
            assert (before / rel).read_bytes() == (after / rel).read_bytes(), rel
