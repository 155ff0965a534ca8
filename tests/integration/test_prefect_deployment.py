"""prefect.yaml deployed to a real `prefect server` and run by a process worker, as on a single machine: the
data sub-flow on the ci profile completes with one task run per selected stage, and a second run of the same
deployment skips every stage (nothing changed). The Kubernetes pool's base job template is accepted too."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT
from small_project import DATA

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]

PREFECT = str(Path(sys.executable).parent / "prefect")
STAGES = ["templates", "sources", "collect"]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group (the server's uvicorn, the worker's flow runs), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is still there
    except ProcessLookupError:
        pass
    process.wait()


class Server:
    """A `prefect server start` on 127.0.0.1 with a temporary PREFECT_HOME, and its CLI environment."""

    def __init__(self, home: Path, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}/api"
        self.home = home
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "LAMOPS_CODE_DIR": str(ROOT),  # the checkout the flow runs chdir to (prefect.yaml pull step)
            "LAMOPS_PROGRESS": "0",
            "COLUMNS": "200",
        }

    def cli(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [PREFECT, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        return done.stdout

    def client(self):
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.url)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    srv = Server(home, port)
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        env=srv.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (home / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "prefect server did not answer /api/health within 120 s"
            try:
                with urllib.request.urlopen(f"{srv.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield srv
    finally:
        stop(process)
        log.close()
    assert not listening(port), f"something still listens on port {port} after the server stopped"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A data project: params and dvc.yaml of the repository, outputs written beside them."""
    root = tmp_path_factory.mktemp("deployed-project")
    shutil.copy(ROOT / "params.yaml", root)
    shutil.copy(ROOT / "dvc.yaml", root)
    shutil.copytree(ROOT / "params", root / "params")
    return root


def run_deployment(server: Server, name: str, parameters: dict) -> str:
    """Trigger `name`, let a run-once process worker execute it; the flow run's id once it is final."""
    out = server.cli("deployment", "run", name, "--params", json.dumps(parameters))
    flow_run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
    assert flow_run_id, out
    worker_log = (server.home / "worker.log").open("a")
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "lamops-process", "--run-once", "--type", "process"],
        cwd=ROOT,
        env=server.env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        with server.client() as client:
            while (state := client.read_flow_run(flow_run_id.group(1)).state).type.value not in FINAL:
                assert time.monotonic() < deadline, f"flow run still {state.type.value} after 300 s"
                time.sleep(1)
        # The flow run's process sends its last logs as it exits, after the run is final: a --run-once worker
        # exits after it. Stopping the group earlier loses those logs.
        worker.wait(timeout=120)
    finally:
        stop(worker)
        worker_log.close()
    assert state.type.value == "COMPLETED", (
        f"{state.type.value}: {state.message}\n{(server.home / 'worker.log').read_text()[-4000:]}"
    )
    return flow_run_id.group(1)


def task_runs_and_logs(server: Server, flow_run_id: str, until: str = "") -> tuple[list[str], str]:
    """The flow run's task names in start order, and its log messages once they include `until` (a regex).

    Logs reach the API in batches, after the flow run is final (the flow run process flushes them at exit, the
    worker after it), so they are read again for up to 60 s until the awaited line is there."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + 60
    with server.client() as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        while True:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            text = "\n".join(log.message for log in logs)
            if re.search(until, text) or time.monotonic() > deadline:
                break
            time.sleep(1)
    states = {run.name.rsplit("-", 1)[0]: run.state.type.value for run in runs}
    assert set(states.values()) == {"COMPLETED"}, states
    ordered = sorted(runs, key=lambda run: run.start_time or run.expected_start_time)
    return [run.name.rsplit("-", 1)[0] for run in ordered], text


def test_a_deployment_runs_on_a_process_worker_and_a_rerun_skips_unchanged_stages(
    server: Server, project: Path
) -> None:
    server.cli(
        "work-pool", "create", "lamops-process", "--type", "process",
        "--base-job-template", str(ROOT / "infra/prefect/process.json"),
    )  # fmt: skip
    server.cli("--no-prompt", "deploy", "--name", "nightly-data", timeout=180)
    parameters = {
        "params": str(project / "params.yaml"),
        "profile": "ci",
        "stages": STAGES,
        "overrides": DATA,
        "force": False,
    }

    first = run_deployment(server, "lamops-data/nightly-data", parameters)
    names, logs = task_runs_and_logs(server, first)
    assert names == STAGES
    assert (project / "data/templates/index.json").is_file()
    assert (project / "data/task_plans/collected/pairs.jsonl").is_file()
    assert sorted(p.stem for p in (project / ".lamops/stages/ci").glob("*.json")) == sorted(STAGES)

    second = run_deployment(server, "lamops-data/nightly-data", parameters)
    names, logs = task_runs_and_logs(server, second, until=rf"stage {STAGES[-1]}: unchanged since")
    assert names == STAGES
    for stage in STAGES:
        assert re.search(rf"stage {stage}: unchanged since \S+, skipped", logs), logs[-3000:]


def test_the_kubernetes_pool_accepts_its_base_job_template(server: Server) -> None:
    """The lamops-k8s pool is created from infra/prefect/kubernetes.json (no cluster: nothing runs on it)."""
    server.cli(
        "work-pool", "create", "lamops-k8s", "--type", "kubernetes",
        "--base-job-template", str(ROOT / "infra/prefect/kubernetes.json"),
    )  # fmt: skip
    with server.client() as client:
        pool = client.read_work_pool("lamops-k8s")
    assert pool.type == "kubernetes"
    variables = pool.base_job_template["variables"]["properties"]
    assert variables["image"]["default"] == "lamops:latest"
    assert variables["env"]["default"]["LAMOPS_CODE_DIR"]
    container = pool.base_job_template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert {"configMapRef", "secretRef"} == {key for ref in container["envFrom"] for key in ref}
