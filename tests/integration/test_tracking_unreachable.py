"""An unreachable MLflow server or S3 artifact endpoint fails in seconds with an error naming what and where,
instead of hanging in MLflow's and boto3's retries (minutes by default)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT

from lamops import tracking
from lamops.config import load_config

# The checks wait CHECK_TIMEOUT_S at most; the rest is Python start-up and imports on a busy 2-core runner.
LIMIT_S = 10.0


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections (the kernel's backlog) and never answers: a hung tracking server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shutil.copy(ROOT / "params.yaml", tmp_path)
    shutil.copytree(ROOT / "params", tmp_path / "params")
    for name in (*tracking.S3_ENDPOINT_ENVS, "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    return lambda *overrides: load_config(tmp_path / "params.yaml", "ci", list(overrides))


def test_closed_tracking_server_port_fails_fast_naming_the_uri(cfg, monkeypatch) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.perf_counter()
    with pytest.raises(tracking.TrackingUnavailable) as caught:
        tracking.setup(cfg())
    assert time.perf_counter() - start < LIMIT_S
    message = str(caught.value)
    assert f"MLflow tracking server {uri} (from $MLFLOW_TRACKING_URI)" in message
    assert "connection refused" in message and "mlflow/start-server.sh" in message


def test_silent_tracking_server_times_out_instead_of_hanging(cfg, monkeypatch, silent_server) -> None:
    start = time.perf_counter()
    with pytest.raises(tracking.TrackingUnavailable, match=f"{silent_server}.*no answer within"):
        tracking.check_reachable(cfg(f"tracking.uri={silent_server}"))
    assert time.perf_counter() - start < LIMIT_S


def test_closed_s3_endpoint_fails_fast_naming_endpoint_and_bucket(cfg, monkeypatch) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNREACHABLE0TEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unreachable-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    start = time.perf_counter()
    with pytest.raises(tracking.TrackingUnavailable) as caught:
        tracking.setup(cfg("tracking.artifact_root=s3://lamops-artifacts/mlflow"))
    assert time.perf_counter() - start < LIMIT_S
    message = str(caught.value)
    assert "s3://lamops-artifacts/mlflow" in message and "'lamops-artifacts'" in message
    assert endpoint in message and "unreachable" in message
    assert "unreachable-test-secret" not in message


def test_sqlite_default_checks_nothing(cfg, monkeypatch) -> None:
    def forbidden(*_):
        raise AssertionError("the embedded sqlite default must not check a server or a bucket")

    monkeypatch.setattr(tracking, "_check_server", forbidden)
    monkeypatch.setattr(tracking, "_check_bucket", forbidden)
    config = cfg()
    assert not tracking.is_server(tracking.tracking_uri(config))
    tracking.check_reachable(config)


def test_stage_command_reports_an_unreachable_server_within_seconds(tmp_path: Path) -> None:
    shutil.copy(ROOT / "params.yaml", tmp_path)
    shutil.copytree(ROOT / "params", tmp_path / "params")
    uri = f"http://127.0.0.1:{closed_port()}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    start = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lamops"), "sources", "--profile", "ci"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    seconds = time.perf_counter() - start
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: MLflow tracking server {uri}"), done.stderr
    assert seconds < LIMIT_S + 5, f"took {seconds:.1f} s"  # + the CLI's imports (mlflow ~3 s)
    assert not (tmp_path / "data" / "raw").exists(), "the stage ran before tracking was checked"
