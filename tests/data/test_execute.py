"""The execute stage's logic: serial and Ray agree byte for byte, resume, killed workers, broken templates."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from lamops.agents.expert import ExpertAgent
from lamops.compute import LOST
from lamops.data.execute import (
    DOCUMENTS,
    SETTINGS_FILE,
    TIMINGS_FILE,
    TRAJECTORIES,
    document_bytes,
    execute_task_file,
    execute_tasks,
)
from lamops.env.observation import PromptView
from lamops.env.templates import INDEX_FILE, normalize_docx_bytes
from lamops.env.word import WordEnv
from lamops.records import Trajectory

SETTINGS = {"max_steps": 30, "view": PromptView(), "min_score": 80.0, "progress": False}


def run(tasks, out_dir: Path, library: Path, workers: int = 0, **kw):
    return execute_tasks(tasks, out_dir, templates_dir=library, workers=workers, **{**SETTINGS, **kw})


def digests(out_dir: Path) -> dict[str, str]:
    """sha256 of every file but timings.jsonl (the one file allowed to differ between runs)."""
    return {
        p.relative_to(out_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out_dir.rglob("*"))
        if p.is_file() and p.name != TIMINGS_FILE
    }


def stored(out_dir: Path) -> dict[str, Trajectory]:
    return {
        p.stem: Trajectory.model_validate_json(p.read_bytes())
        for p in (out_dir / TRAJECTORIES).glob("*.json")
    }


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory, template_library, family_tasks):
    out = tmp_path_factory.mktemp("execute") / "serial"
    return out, run(family_tasks, out, template_library)


def test_expert_without_verify_leaves_the_verdict_and_records_the_final_prompt(family_tasks):
    env = WordEnv()
    task = next(t for t in family_tasks if t.family == "emphasize_phrase")
    traj = ExpertAgent().run(env, task, verify=False)
    assert traj.verdict is None and traj.error is None
    assert traj.final_prompt == env.observe().prompt(env.view)
    assert traj.final_prompt != traj.steps[-1].prompt  # the state after the last action, not before it
    assert ExpertAgent().run(env, task).verdict.complete == "yes"


def test_document_bytes_are_a_normalised_save(family_tasks):
    """document_bytes writes python-docx's parts itself (one compression pass): it must stay equal to
    normalising a save, whatever python-docx and the template module do next."""
    env = WordEnv()
    for task in family_tasks[::3]:
        ExpertAgent().run(env, task, verify=False)
        assert document_bytes(env.live) == normalize_docx_bytes(env.live.to_bytes()), task.task_id


def test_serial_run_writes_one_trajectory_and_document_per_task(serial_run, family_tasks):
    out, summary = serial_run
    assert (summary.tasks, summary.run, summary.resumed, summary.removed) == (
        len(family_tasks),
        len(family_tasks),
        0,
        0,
    )
    assert summary.failed_to_run == 0 and summary.workers == 0 and summary.trajectories_per_s > 0
    trajs = stored(out)
    assert sorted(trajs) == [t.task_id for t in family_tasks]
    for task in family_tasks:
        traj = trajs[task.task_id]
        assert traj.task == task and traj.verdict is None and traj.final_prompt
        assert traj.final_document == f"documents/{task.task_id}.docx"  # relative: the folder can move
        assert (out / traj.final_document).is_file()
        assert traj.seconds == 0.0 and all(s.latency == 0.0 for s in traj.steps)  # timings live apart
    timings = [json.loads(line) for line in (out / TIMINGS_FILE).read_text().splitlines()]
    assert [t["task_id"] for t in timings] == [t.task_id for t in family_tasks]
    assert all(t["seconds"] > 0 and len(t["step_latency"]) == len(trajs[t["task_id"]].steps) for t in timings)


def test_ray_gives_the_same_bytes_as_serial(ray_local, serial_run, family_tasks, template_library, tmp_path):
    serial_out, _ = serial_run
    summary = run(family_tasks, tmp_path / "ray", template_library, workers=2, batch_size=4)
    assert summary.workers == 2 and summary.run == len(family_tasks) and summary.failed_to_run == 0
    # Comment tasks included: comments stamped with the wall clock would differ here.
    assert any(t.family == "comment_phrase" for t in family_tasks)
    assert digests(tmp_path / "ray") == digests(serial_out)


def test_resume_runs_only_what_is_missing_or_stale(serial_run, family_tasks, template_library, tmp_path):
    out = tmp_path / "out"
    first = run(family_tasks[:10], out, template_library)
    assert first.run == 10
    traj_dir, doc_dir = out / TRAJECTORIES, out / DOCUMENTS
    # A trajectory torn in half, one for a task whose request has changed since, a task id no longer asked
    # for, and a crashed run's temp file.
    torn = traj_dir / f"{family_tasks[2].task_id}.json"
    torn.write_bytes(torn.read_bytes()[:100])
    changed = traj_dir / f"{family_tasks[3].task_id}.json"
    traj = Trajectory.model_validate_json(changed.read_bytes())
    traj.task.request += " (old wording)"
    changed.write_text(traj.model_dump_json())
    # A task whose worker kept dying (out of memory, say) is worth another try.
    lost = Trajectory(task=family_tasks[4], agent="expert", error=f"{LOST}: ActorDiedError")
    (traj_dir / f"{family_tasks[4].task_id}.json").write_text(lost.model_dump_json())
    shutil.copy(traj_dir / f"{family_tasks[0].task_id}.json", traj_dir / "gone-task-0.json")
    shutil.copy(doc_dir / f"{family_tasks[0].task_id}.docx", doc_dir / "gone-task-0.docx")
    (traj_dir / f".{family_tasks[12].task_id}.json.x1y2.tmp").write_bytes(b'{"task": {"task_')
    # The document of a finished trajectory is missing (deleted by hand): run it again.
    (doc_dir / f"{family_tasks[5].task_id}.docx").unlink()

    summary = run(family_tasks[:16], out, template_library)
    assert (summary.tasks, summary.resumed, summary.run, summary.removed) == (16, 6, 10, 1)
    assert sorted(p.name for p in traj_dir.iterdir()) == sorted(
        f"{t.task_id}.json" for t in family_tasks[:16]
    )
    assert sorted(p.name for p in doc_dir.iterdir()) == sorted(f"{t.task_id}.docx" for t in family_tasks[:16])
    serial = digests(serial_run[0])
    assert {k: v for k, v in digests(out).items() if k != SETTINGS_FILE} == {
        k: v
        for k, v in serial.items()
        if k != SETTINGS_FILE and Path(k).stem in {t.task_id for t in family_tasks[:16]}
    }
    timings = [json.loads(line)["task_id"] for line in (out / TIMINGS_FILE).read_text().splitlines()]
    assert timings == sorted(t.task_id for t in family_tasks[:16])

    assert run(family_tasks[:16], out, template_library).resumed == 16  # nothing left to do
    # Other settings make every stored trajectory stale.
    again = run(family_tasks[:16], out, template_library, min_score=85.0)
    assert (again.resumed, again.run) == (0, 16)


def test_a_killed_worker_is_replaced_and_every_task_written_once(
    ray_local, serial_run, family_tasks, template_library, tmp_path
):
    killed: list[int] = []
    after: list[int] = []  # the processes of the batches done after the kill

    def kill_once(batch):
        if killed:
            after.append(batch.worker_pid)
        else:
            killed.append(batch.worker_pid)
            os.kill(batch.worker_pid, signal.SIGKILL)  # as the OOM killer would

    summary = run(
        family_tasks, tmp_path / "out", template_library, workers=2, batch_size=4, on_batch=kill_once
    )
    # The killed process's queued batch ran again elsewhere (Ray retries it): every batch done afterwards.
    assert killed and after and killed[0] not in after
    assert summary.run == len(family_tasks)  # one write per task: no batch written twice
    assert summary.failed_to_run == 0
    assert digests(tmp_path / "out") == digests(serial_run[0])


def test_ray_data_reading_the_task_file_writes_what_the_driver_path_writes(
    ray_local, serial_run, family_tasks, template_library, tmp_path
):
    """The cluster path: Ray Data reads tasks.jsonl in the workers, which skip what is stored and valid."""
    source, out = tmp_path / "tasks.jsonl", tmp_path / "out"

    def run_file(tasks):
        source.write_text("".join(t.model_dump_json() + "\n" for t in tasks))
        return execute_task_file(
            source, out, templates_dir=template_library, workers=2, batch_size=4, **SETTINGS
        )

    summary, ids = run_file(family_tasks)
    assert sorted(ids) == sorted(t.task_id for t in family_tasks) and summary.run == len(family_tasks)
    assert digests(out) == digests(serial_run[0])
    # Resume: one task's request changed since, one task no longer asked for.
    changed = family_tasks[3].model_copy(update={"request": family_tasks[3].request + " (new wording)"})
    again, _ = run_file([*family_tasks[:3], changed, *family_tasks[4:-1]])
    assert (again.tasks, again.run, again.resumed, again.removed) == (
        len(family_tasks) - 1,
        1,
        len(family_tasks) - 2,
        1,
    )
    assert not (out / TRAJECTORIES / f"{family_tasks[-1].task_id}.json").exists()
    source.write_text(source.read_text() + "{not a task\n")
    with pytest.raises(Exception, match="malformed task line"):
        execute_task_file(source, out, templates_dir=template_library, workers=2, batch_size=4, **SETTINGS)


def test_broken_templates_give_failed_trajectories(family_tasks, template_library, tmp_path):
    library = tmp_path / "templates"
    shutil.copytree(template_library, library)
    # A corrupt .docx that the index vouches for, so only opening it can fail.
    garbage = b"PK\x03\x04 this is not a zip archive"
    (library / "plain_text.docx").write_bytes(garbage)
    index = json.loads((library / INDEX_FILE).read_text())
    for entry in index:
        if entry["name"] == "plain_text":
            entry["sha256"] = hashlib.sha256(garbage).hexdigest()
    (library / INDEX_FILE).write_text(json.dumps(index))
    unknown = family_tasks[0].model_copy(update={"task_id": "unknown-template-0", "template": "no_such"})
    tasks = [*family_tasks[:12], unknown]
    broken = {t.task_id for t in tasks if t.template in ("plain_text", "no_such")}
    assert 1 < len(broken) < len(tasks)

    summary = run(tasks, tmp_path / "out", library)
    assert summary.run == len(tasks) and summary.failed_to_run == len(broken)
    for task_id, traj in stored(tmp_path / "out").items():
        if task_id in broken:
            assert traj.error.startswith("the environment failed to run the task")
            assert traj.final_document is None and not traj.steps
        else:
            assert traj.error is None and (tmp_path / "out" / traj.final_document).is_file()
    assert "no_such" in stored(tmp_path / "out")["unknown-template-0"].error


def test_repeated_task_ids_are_refused(family_tasks, template_library, tmp_path):
    with pytest.raises(ValueError, match="unique"):
        run([family_tasks[0], family_tasks[0]], tmp_path / "out", template_library)
