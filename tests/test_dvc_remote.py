"""The DVC remote (lamops.remote): configured from params and the environment into .dvc/config.local,
`dvc push` and `dvc pull` against a real moto S3 server on 127.0.0.1 (boto3 unpatched), and a fast failure
naming the endpoint when it is down."""

import filecmp
import shutil
import socket
import time
from pathlib import Path

import boto3
import pytest
from helpers import ROOT
from test_dvc_repro import make_project, run

from lamops import remote
from lamops.config import ConfigError, load_config

ENV_VARS = ("LAMOPS_REMOTE_URL", "LAMOPS_REMOTE_ENDPOINT_URL", "AWS_ENDPOINT_URL")


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Fake credentials from the environment only: no ~/.aws files, no endpoint or remote set outside."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)


# ---- resolution: pure, no DVC project needed --------------------------------------------------------------


def test_environment_wins_over_params() -> None:
    overrides = ["remote.url=s3://team/lamops", "remote.endpoint_url=x"]
    cfg = load_config(ROOT / "params.yaml", overrides=overrides)
    assert remote.resolve(cfg, {}).endpoint_url == "x"
    env = {"LAMOPS_REMOTE_URL": "s3://other/p/", "AWS_ENDPOINT_URL": "a", "LAMOPS_REMOTE_ENDPOINT_URL": "b"}
    got = remote.resolve(cfg, env)
    assert (got.url, got.bucket, got.prefix, got.endpoint_url) == ("s3://other/p", "other", "p", "b")
    assert "$LAMOPS_REMOTE_URL" in got.describe() and "$LAMOPS_REMOTE_ENDPOINT_URL" in got.describe()
    assert remote.resolve(cfg, {"AWS_ENDPOINT_URL": "http://a"}).endpoint_url == "http://a"


def test_no_url_anywhere_says_where_to_set_one() -> None:
    cfg = load_config(ROOT / "params.yaml")
    with pytest.raises(remote.RemoteError, match=r"remote\.url .*params\.yaml.*LAMOPS_REMOTE_URL"):
        remote.resolve(cfg, {})
    with pytest.raises(remote.RemoteError, match="expected s3://bucket/prefix, got 'gs://x'"):
        remote.resolve(cfg, {"LAMOPS_REMOTE_URL": "gs://x"})


def test_params_reject_a_url_that_is_not_s3() -> None:
    with pytest.raises(ConfigError, match=r"remote\.url.*expected s3://bucket/prefix"):
        load_config(ROOT / "params.yaml", overrides=["remote.url=/mnt/share"])


# ---- configure, push, pull --------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project", ["templates", "sources"])


def test_configure_writes_the_local_config_only(project: Path, aws_env, monkeypatch) -> None:
    monkeypatch.setenv("LAMOPS_REMOTE_URL", "s3://team/lamops")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    committed = (project / ".dvc/config").read_text()
    said = remote.configure(load_config(project / "params.yaml"))
    assert "s3://team/lamops" in said and "http://127.0.0.1:9" in said and "config.local" in said
    local = (project / ".dvc/config.local").read_text()
    assert "remote = storage" in local and "url = s3://team/lamops" in local
    assert "endpointurl = http://127.0.0.1:9" in local
    assert (project / ".dvc/config").read_text() == committed

    # Set up again without an endpoint: the old one does not linger.
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    remote.configure(load_config(project / "params.yaml"))
    assert "endpointurl" not in (project / ".dvc/config.local").read_text()


@pytest.mark.integration
def test_push_then_pull_restores_outputs_byte_identical(project, s3_endpoint, aws_env, tmp_path) -> None:
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="lamops-remote")
    run(["dvc", "repro", "templates", "sources"], project)
    kept = tmp_path / "kept"
    for out in ("data/templates", "data/raw"):
        shutil.copytree(project / out, kept / out)

    # Bucket and prefix from params (a profile would hold them), the endpoint from the environment.
    cfg = load_config(project / "params.yaml", overrides=["remote.url=s3://lamops-remote/team/lamops"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
        pushed = remote.push(cfg)
        assert "pushed" in pushed, pushed
        listing = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket="lamops-remote")
        keys = [o["Key"] for o in listing.get("Contents", [])]
        files = sum(1 for _ in (kept / "data").rglob("*") if _.is_file())
        assert keys and all(k.startswith("team/lamops/files/md5/") for k in keys), keys[:5]
        assert len(keys) >= files  # every file, plus a manifest per folder
        assert "in sync" in remote.status(cfg)

        shutil.rmtree(project / ".dvc/cache")
        shutil.rmtree(project / "data")
        pulled = remote.pull(cfg)
    assert "added" in pulled, pulled
    for out in ("data/templates", "data/raw"):
        compared = filecmp.dircmp(kept / out, project / out)
        assert not (compared.left_only or compared.right_only or compared.diff_files), out
        for path in (kept / out).rglob("*"):
            if path.is_file():
                assert (project / out / path.relative_to(kept / out)).read_bytes() == path.read_bytes()
    assert "didn't change" in run(["dvc", "repro", "templates", "sources"], project)


def test_unreachable_endpoint_fails_fast_naming_it(project: Path, aws_env, monkeypatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("LAMOPS_REMOTE_ENDPOINT_URL", endpoint)
    cfg = load_config(project / "params.yaml", overrides=["remote.url=s3://lamops-remote/team"])
    for transfer in (remote.push, remote.pull, remote.status):
        start = time.perf_counter()
        with pytest.raises(remote.RemoteError) as caught:
            transfer(cfg)
        assert time.perf_counter() - start < 10
        message = str(caught.value)
        assert endpoint in message and "'lamops-remote'" in message, message


def test_missing_bucket_is_named(project: Path, s3_endpoint, aws_env, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    cfg = load_config(project / "params.yaml", overrides=["remote.url=s3://no-such-bucket/x"])
    with pytest.raises(remote.RemoteError, match="'no-such-bucket'.*does not exist"):
        remote.push(cfg)
