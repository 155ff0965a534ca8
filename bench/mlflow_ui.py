"""The MLflow UI as a user sees it after a `ci` pipeline: headless Chromium loads the experiment page of a
tracking server (PostgreSQL backend, artifacts proxied to S3 on a moto server) and the runs of every phase
must be listed. Prints the figures and writes a screenshot to bench/out/mlflow_ui.png.

    python bench/mlflow_ui.py                                   # fresh stack, runs the ci pipeline (~5 min)
    python bench/mlflow_ui.py --backend-store-uri postgresql://mlflow@127.0.0.1:5433/mlflow \\
        --artifacts-destination s3://bucket/mlflow              # serve an existing store, no pipeline
    python bench/mlflow_ui.py --tracking-uri http://127.0.0.1:5000   # a server already running

tests/integration/test_mlflow_server.py uses the same stack and checks (`start_stack`, `run_ci_pipeline`,
`dump_dom`, `missing_runs`). Chromium runs as root here, hence --no-sandbox; it needs Debian's `chromium`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUT = ROOT / "bench" / "out"
BUCKET = "lamops-mlflow"
PREFIX = "artifacts"
EXPERIMENT = "lamops"
# The runs a user looks for on the experiment page after `lamops pipeline`: the flow's run, every training
# phase's run, evaluate with one run per evaluated phase (and the expert), and promote.
PHASE_RUNS = ("plan_pretrain", "imitate", "self_boost", "reward_model", "offline_rl", "evaluate", "promote")
EVALUATED = ("lam1", "lam2", "lam3", "lam4", "expert")
UI_RUNS = ("pipeline", *PHASE_RUNS, *EVALUATED)
COMPARED_METRICS = ("offline.ssr", "offline.tsr", "online.tsr")  # rows of the phases' compare page
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # root in CI containers; the page is our own local server
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
# Virtual time Chromium gives the React app to fetch and render the runs before dumping (not wall time).
VIRTUAL_TIME_BUDGET_MS = 15000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.is_file():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_for(
    url: str, seconds: float, process: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    """Poll `url` until it answers 200; fail naming the log when the process dies or time runs out."""
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}; see {log}:\n{_tail(log)}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url}: no answer within {seconds:.0f} s; see {log}:\n{_tail(log)}")


@dataclass
class Stack:
    """A running tracking server, where its stores are, and the fake secrets its processes were given."""

    uri: str
    workdir: Path
    server_log: Path
    secrets: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)  # what a client needs: AWS_*, MLFLOW_S3_ENDPOINT_URL
    s3_endpoint: str | None = None
    backend_uri: str | None = None
    startup_s: dict[str, float] = field(default_factory=dict)

    def s3(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=self.secrets["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.secrets["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )


def fake_secrets() -> dict[str, str]:
    """Recognisable, unique fake keys: a scan finds them wherever they leak."""
    token = uuid.uuid4().hex[:12]
    return {
        "AWS_ACCESS_KEY_ID": f"AKIALAMOPS{token.upper()[:10]}",
        "AWS_SECRET_ACCESS_KEY": f"lamops-aws-secret-{token}",
        "LLM_KEY": f"sk-lamops-llm-secret-{token}",
    }


@contextmanager
def postgres(workdir: Path) -> Iterator[str]:
    """A throwaway cluster from mlflow/dev-postgres.sh; yields its backend store URI."""
    pg_dir = workdir / "pg"
    script = str(ROOT / "mlflow" / "dev-postgres.sh")
    done = subprocess.run(
        ["bash", script, "start", str(pg_dir), str(free_port())], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script} start {pg_dir}: exit status {done.returncode}: {done.stderr.strip()}")
    uri = done.stdout.strip()
    try:
        yield uri
    finally:
        subprocess.run(["bash", script, "stop", str(pg_dir)], timeout=60, check=False)


@contextmanager
def mlflow_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """mlflow/start-server.sh with `env` (MLFLOW_BACKEND_STORE_URI, ...); yields its URI once healthy."""
    port = free_port()
    full_env = {
        **os.environ,
        **env,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": env.get("MLFLOW_WORKERS", "1"),
    }
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["bash", str(ROOT / "mlflow" / "start-server.sh")],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{uri}/health", 180, server, log)
        yield uri
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


@contextmanager
def start_stack(
    backend_store_uri: str | None = None, artifacts_destination: str | None = None
) -> Iterator[Stack]:
    """PostgreSQL (unless `backend_store_uri`), a moto S3 server with the bucket (unless
    `artifacts_destination`), and the MLflow server in front of them."""
    from moto.server import ThreadedMotoServer

    secrets = fake_secrets()
    # Not pytest's tmp_path: the `postgres` user must be able to enter it when this runs as root.
    workdir = Path(tempfile.mkdtemp(prefix="lamops-mlflow-server-"))
    workdir.chmod(0o711)  # mkdtemp's 0700 would keep the `postgres` user out of the cluster folder inside
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        if backend_store_uri is None:
            backend_store_uri = stack.enter_context(postgres(workdir))
            timings["postgres_start_s"] = time.perf_counter() - start
        env = {
            "AWS_ACCESS_KEY_ID": secrets["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": secrets["AWS_SECRET_ACCESS_KEY"],
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        endpoint = None
        if artifacts_destination is None:
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
            moto.start()
            stack.callback(moto.stop)
            endpoint = f"http://127.0.0.1:{moto._port}"
            env.update(MLFLOW_S3_ENDPOINT_URL=endpoint, AWS_ENDPOINT_URL=endpoint)
            artifacts_destination = f"s3://{BUCKET}/{PREFIX}"
        else:
            secrets = {}  # a real store's credentials are the caller's environment, not ours to scan for
            env = {k: v for k in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL") if (v := os.environ.get(k))}
        log = workdir / "mlflow-server.log"
        result = Stack(
            uri="",
            workdir=workdir,
            server_log=log,
            secrets=secrets,
            env=env,
            s3_endpoint=endpoint,
            backend_uri=backend_store_uri,
            startup_s=timings,
        )
        if endpoint is not None:
            result.s3().create_bucket(Bucket=BUCKET)
        server_env = {
            **env,
            "MLFLOW_BACKEND_STORE_URI": backend_store_uri,
            "MLFLOW_ARTIFACTS_DESTINATION": artifacts_destination,
        }
        start = time.perf_counter()
        result.uri = stack.enter_context(mlflow_server(server_env, log))
        timings["mlflow_server_start_s"] = time.perf_counter() - start
        yield result


@dataclass
class PipelineRun:
    project: Path
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def make_project(root: Path) -> Path:
    """A project folder as a user has one: params, profiles, dvc.yaml, and (linked) the flows/tasks packages
    `lamops pipeline` imports from the project root and the infra/ configs (DeepSpeed) params name."""
    root.mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", root)
    shutil.copy(ROOT / "dvc.yaml", root)
    shutil.copytree(ROOT / "params", root / "params")
    for package in ("flows", "tasks", "infra"):
        (root / package).symlink_to(ROOT / package, target_is_directory=True)
    return root


def run_ci_pipeline(stack: Stack, timeout_s: float = 1200) -> PipelineRun:
    """`lamops pipeline --profile ci` in a fresh project against the server, with the fake AWS keys and the
    fake LLM key (in the variable `llm.api_key_env` names) in its environment. Output is kept for scans."""
    from lamops.config import load_config

    project = make_project(stack.workdir / "project")
    key_env = load_config(project / "params.yaml", "ci").llm.api_key_env
    env = {
        **os.environ,
        **stack.env,
        "MLFLOW_TRACKING_URI": stack.uri,
        "PREFECT_HOME": str(stack.workdir / "prefect"),
        "LAMOPS_PROGRESS": "0",
    }
    if "LLM_KEY" in stack.secrets:
        env[key_env] = stack.secrets["LLM_KEY"]
    env.pop("PREFECT_API_URL", None)
    start = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "lamops"), "pipeline", "--profile", "ci", "--params", str(project / "params.yaml")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    seconds = time.perf_counter() - start
    (stack.workdir / "pipeline.stdout").write_text(done.stdout)
    (stack.workdir / "pipeline.stderr").write_text(done.stderr)
    return PipelineRun(project, done.returncode, done.stdout, done.stderr, seconds)


def chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def experiment_url(uri: str, experiment_id: str) -> str:
    """The experiment's runs table sorted by run name. MLflow 3.17 opens an experiment on its GenAI overview
    (no runs), and its runs table nests child runs under a collapsed parent unless the runs are sorted by
    something other than date or filtered: sorted by name, every stage's and phase's run is a row."""
    order = quote("tags.`mlflow.runName`")
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs?orderByKey={order}&orderByAsc=true"


def _chromium(browser: str, url: str, profile: Path, *extra: str, timeout_s: float = 120) -> str:
    profile.mkdir(parents=True, exist_ok=True)
    user_data = tempfile.mkdtemp(prefix="chromium-", dir=profile)
    done = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={user_data}",
            f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    shutil.rmtree(user_data, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"{browser} {url}: exit status {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def dump_dom(browser: str, url: str, profile: Path) -> str:
    """The page's DOM after the React app has rendered (headless Chromium, virtual time)."""
    # A tall window: the runs table renders only the rows in view (plus a small buffer).
    return _chromium(browser, url, profile, "--dump-dom", "--window-size=1600,3000")


def screenshot(browser: str, url: str, profile: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _chromium(browser, url, profile, f"--screenshot={path}", "--window-size=1600,1000")
    if not path.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot to {path}")


def missing_runs(dom: str, names=UI_RUNS) -> list[str]:
    """The run names not shown on the page (a name is a cell's whole text: `>name<` in the DOM)."""
    return [name for name in names if f">{name}<" not in dom]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", help="A running tracking server: check its UI, start nothing.")
    parser.add_argument("--backend-store-uri", help="Serve this existing store; no pipeline run.")
    parser.add_argument("--artifacts-destination", help="With --backend-store-uri: its artifact root.")
    args = parser.parse_args()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    browser = chromium()
    if browser is None:
        print("error: no chromium; apt-get install -y --no-install-recommends chromium", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        if args.tracking_uri:
            uri, workdir = args.tracking_uri, Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            served = stack.enter_context(start_stack(args.backend_store_uri, args.artifacts_destination))
            uri, workdir = served.uri, served.workdir
            for name, seconds in served.startup_s.items():
                print(f"{name}: {seconds:.1f} s")
            if args.backend_store_uri is None:
                run = run_ci_pipeline(served)
                print(f"ci_pipeline_wall_s: {run.seconds:.1f} s (exit status {run.returncode})")
                if run.returncode != 0:
                    print(run.stderr[-4000:], file=sys.stderr)
                    return 1
        from mlflow import MlflowClient

        experiment = MlflowClient(uri).get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            print(f"error: {uri}: no experiment {EXPERIMENT!r}", file=sys.stderr)
            return 1
        url = experiment_url(uri, experiment.experiment_id)
        start = time.perf_counter()
        dom = dump_dom(browser, url, workdir)
        print(f"mlflow_ui_load: {time.perf_counter() - start:.1f} s (headless Chromium, {url})")
        missing = missing_runs(dom)
        print(f"mlflow_ui_runs_listed: {len(UI_RUNS) - len(missing)}/{len(UI_RUNS)}")
        start = time.perf_counter()
        screenshot(browser, url, workdir, OUT / "mlflow_ui.png")
        print(f"mlflow_ui_screenshot: {time.perf_counter() - start:.1f} s -> {OUT / 'mlflow_ui.png'}")
        if missing:
            print(f"error: the experiment page does not list {', '.join(missing)}", file=sys.stderr)
            return 1
        return check_compare_page(browser, uri, experiment.experiment_id, workdir)
    return 0


def phase_runs(uri: str, experiment_id: str) -> dict[str, str]:
    """Name -> id of the latest evaluate's runs of the phases and the expert (tagged `lamops.phase`)."""
    from mlflow import MlflowClient

    found: dict[str, str] = {}
    runs = MlflowClient(uri).search_runs(
        [experiment_id], "tags.`lamops.phase` != ''", order_by=["attributes.start_time DESC"], max_results=200
    )
    for run in runs:
        found.setdefault(run.info.run_name, run.info.run_id)
    return {name: found[name] for name in EVALUATED if name in found}


def check_compare_page(browser: str, uri: str, experiment_id: str, workdir: Path) -> int:
    """The page comparing LAM1-LAM4 and the expert (the link in the evaluate run's description) must load
    and show every phase and the evaluation metrics."""
    from lamops.stages.evaluate import compare_url

    runs = phase_runs(uri, experiment_id)
    url = f"{uri.rstrip('/')}/{compare_url(experiment_id, list(runs.values()))}"
    start = time.perf_counter()
    dom = dump_dom(browser, url, workdir)
    print(f"mlflow_ui_compare_load: {time.perf_counter() - start:.1f} s (headless Chromium, {url})")
    shown = [name for name in runs if f">{name}<" in dom]
    metrics = [key for key in COMPARED_METRICS if key in dom]
    print(f"mlflow_ui_compare_runs_shown: {len(shown)}/{len(EVALUATED)}")
    print(f"mlflow_ui_compare_metrics_shown: {len(metrics)}/{len(COMPARED_METRICS)}")
    screenshot(browser, url, workdir, OUT / "mlflow_ui_compare.png")
    print(f"mlflow_ui_compare_screenshot: {OUT / 'mlflow_ui_compare.png'}")
    if len(shown) < len(EVALUATED) or len(metrics) < len(COMPARED_METRICS):
        lacking = [n for n in EVALUATED if n not in shown] + [k for k in COMPARED_METRICS if k not in metrics]
        print(f"error: the compare page does not show {', '.join(lacking)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
