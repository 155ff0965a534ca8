"""Fault test: the pipeline flow killed (its whole process group) during a training phase, then run again:
the stages that finished are skipped, and the interrupted phase resumes from its last checkpoint.

The ci profile trains in the flow's own process (train.backend local), so the kill stops training at once;
killing Ray Train workers mid-phase is tests/stages/test_train_stages.py's kill test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT
from small_project import DATA, DATA_STAGES

from lamops.train.distributed import LOCAL_LATEST_FILE

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

STAGES = [*DATA_STAGES, "plan_pretrain", "imitate"]
# imitate long enough to be killed between its first checkpoint (step 4) and its end.
OVERRIDES = [
    *DATA,
    "train.checkpoint_every=4",
    "plan_pretrain.sft.max_steps=8",
    "imitate.sft.max_steps=40",
    "imitate.sft.max_len=1024",
]
# The flow in a process of its own, on Prefect's ephemeral server; prints its StageResults on the last line.
RUN_FLOW = """
import json, sys
from flows.pipeline import pipeline
print("RESULTS " + json.dumps(pipeline(**json.loads(sys.argv[1]))))
"""


def flow_command(project: Path) -> list[str]:
    args = {"params": str(project / "params.yaml"), "profile": "ci", "stages": STAGES, "overrides": OVERRIDES}
    return [sys.executable, "-c", RUN_FLOW, json.dumps(args)]


def test_a_flow_killed_during_a_training_phase_skips_finished_stages_and_resumes_it(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(ROOT / name, project)
    for name in ("params", "infra"):
        shutil.copytree(ROOT / name, project / name)
    env = {**os.environ, "LAMOPS_PROGRESS": "0", "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)  # ephemeral mode: a temporary local server per flow run process
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        flow_command(project), cwd=ROOT, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
    )
    snapshot = None
    deadline = time.monotonic() + 600
    while snapshot is None and time.monotonic() < deadline and first.poll() is None:
        found = list((project / "checkpoints").glob(f"imitate-*/{LOCAL_LATEST_FILE}"))
        snapshot = found[0] if found else None
        time.sleep(0.2)
    try:
        assert snapshot is not None, (
            f"no imitate checkpoint before the run ended (exit {first.poll()}):\n"
            + (tmp_path / "first.log").read_text()[-4000:]
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        log.close()
    stamps = project / ".lamops/stages/ci"
    assert sorted(p.stem for p in stamps.glob("*.json")) == sorted([*DATA_STAGES, "plan_pretrain"])
    step = json.loads(snapshot.read_text())["step"]
    assert 4 <= step < 40

    second = subprocess.run(
        flow_command(project), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    line = next(x for x in reversed(second.stdout.splitlines()) if x.startswith("RESULTS "))
    results = {r["stage"]: r for r in json.loads(line.removeprefix("RESULTS "))}
    assert list(results) == STAGES
    for stage in [*DATA_STAGES, "plan_pretrain"]:
        assert results[stage]["message"].startswith("unchanged since "), results[stage]
    assert results["imitate"]["metrics"]["resumed_from_step"] == step
    assert f"resumed from step {step}" in results["imitate"]["message"]
    assert (project / "models/lam2/model.safetensors").is_file()
    assert (stamps / "imitate.json").is_file()
