"""The DVC remote that shares the pipeline's data and models between machines: configure it from the
`remote` params section (or the environment), and push, pull or compare against it.

The remote goes into .dvc/config.local, never the committed .dvc/config: bucket and endpoint belong to a
deployment (a laptop against MinIO, CI against moto, a cluster against S3), not to the code. Credentials are
never in params; DVC and boto3 read them from the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...).

Before DVC runs, a boto3 `head_bucket` with a short connect timeout checks the endpoint and the bucket: DVC
itself retries an unreachable endpoint for minutes before it says so, and then not which one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lamops.config import Config

URL_ENV_VAR = "LAMOPS_REMOTE_URL"
ENDPOINT_ENV_VARS = ("LAMOPS_REMOTE_ENDPOINT_URL", "AWS_ENDPOINT_URL")


class RemoteError(RuntimeError):
    """The remote is not configured, cannot be reached, or a DVC transfer failed; the message names the
    remote's URL and endpoint and says what to do."""


@dataclass(frozen=True)
class Remote:
    """Where the DVC remote is, after the environment has been applied over params."""

    name: str
    url: str
    endpoint_url: str | None
    connect_timeout_s: float
    origin: str  # which setting gave the URL and endpoint, for messages

    @property
    def bucket(self) -> str:
        return self.url.removeprefix("s3://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        return self.url.removeprefix("s3://").partition("/")[2].strip("/")

    def describe(self) -> str:
        at = f"endpoint {self.endpoint_url}" if self.endpoint_url else "AWS S3"
        return f"DVC remote '{self.name}': {self.url} on {at} ({self.origin})"


def resolve(cfg: Config, environ: Mapping[str, str] | None = None) -> Remote:
    """The remote of `cfg.remote` with $LAMOPS_REMOTE_URL and $LAMOPS_REMOTE_ENDPOINT_URL (then
    $AWS_ENDPOINT_URL) applied over it. Raises RemoteError when no URL is set anywhere."""
    environ = os.environ if environ is None else environ
    r = cfg.remote
    url, url_from = r.url, "params remote.url"
    if environ.get(URL_ENV_VAR):
        url, url_from = environ[URL_ENV_VAR], f"${URL_ENV_VAR}"
    if not url:
        raise RemoteError(
            f"no DVC remote configured: set remote.url (s3://bucket/prefix) in {cfg.root / 'params.yaml'} "
            f"or ${URL_ENV_VAR}"
        )
    if not url.startswith("s3://") or not url[5:].split("/")[0]:
        raise RemoteError(f"{url_from}: expected s3://bucket/prefix, got {url!r}")
    endpoint, endpoint_from = r.endpoint_url, "params remote.endpoint_url"
    for var in ENDPOINT_ENV_VARS:
        if environ.get(var):
            endpoint, endpoint_from = environ[var], f"${var}"
            break
    origin = f"url from {url_from}" + (f", endpoint from {endpoint_from}" if endpoint else "")
    return Remote(r.name, url.rstrip("/"), endpoint or None, r.connect_timeout_s, origin)


def configure(cfg: Config) -> str:
    """Write the remote (params `remote` section, environment over it) into .dvc/config.local as the default
    remote, replacing an earlier one of the same name; returns a line describing it.

    Per deployment, so not in the committed .dvc/config; `dvc push` and `dvc pull` without -r then use it.
    """
    remote = resolve(cfg)
    return f"{remote.describe()}, written to {_write_config(cfg.root, remote)}"


def _write_config(root: Path, remote: Remote) -> Path:
    """`remote` as the default remote in `root`/.dvc/config.local, replacing one of the same name whole (so
    an endpoint no longer set does not linger)."""
    from dvc.config import Config as DvcConfig

    dvc_dir = root / ".dvc"
    if not dvc_dir.is_dir():
        raise RemoteError(f"{root}: not a DVC project (no .dvc/); run `dvc init` there first")
    section = {"url": remote.url}
    if remote.endpoint_url:
        section["endpointurl"] = remote.endpoint_url
    # What `dvc remote add --local -d -f` and `dvc remote modify --local` do, in one validated write.
    with DvcConfig(dvc_dir=str(dvc_dir)).edit("local") as conf:
        conf["remote"][remote.name] = section
        conf["core"]["remote"] = remote.name
    return dvc_dir / "config.local"


def check_reachable(remote: Remote) -> None:
    """Fail within seconds, naming endpoint and bucket, when the bucket cannot be reached: one `head_bucket`
    with a short connect timeout and no retries. Raises RemoteError saying what to fix."""
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    timeout = remote.connect_timeout_s
    where = f"bucket {remote.bucket!r} at {remote.endpoint_url or 'AWS S3'} ({remote.origin})"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=remote.endpoint_url,
            config=BotoConfig(
                connect_timeout=timeout,
                read_timeout=max(timeout, 10.0),
                retries={"total_max_attempts": 1, "mode": "standard"},
            ),
        )
    except ValueError as error:  # botocore rejects an endpoint URL without a scheme or host
        raise RemoteError(f"cannot use {where}: {error}; expected e.g. http://host:9000") from None
    try:
        client.head_bucket(Bucket=remote.bucket)
    except NoCredentialsError:
        raise RemoteError(
            f"no AWS credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or AWS_PROFILE)"
        ) from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "?")
        hint = {
            "404": "it does not exist: create it, or fix the URL",
            "NoSuchBucket": "it does not exist: create it, or fix the URL",
            "403": "access denied: check the credentials in the environment and the bucket policy",
        }.get(code, str(error))
        raise RemoteError(f"cannot use {where}: {hint}") from None
    except BotoCoreError as error:  # connection refused, timeout, bad endpoint URL, DNS
        raise RemoteError(
            f"cannot reach {where} within {timeout:g} s: {error}; is the S3 service running and the "
            f"endpoint right?"
        ) from None


def push(cfg: Config, targets: Sequence[str] = (), jobs: int | None = None) -> str:
    """Configure the remote, check it is reachable, then `dvc push` the outputs in dvc.lock (all stages, or
    `targets`) to it; returns DVC's summary. Raises RemoteError naming the remote when any of it fails."""
    return _transfer(cfg, "push", targets, jobs)


def pull(cfg: Config, targets: Sequence[str] = (), jobs: int | None = None) -> str:
    """Configure the remote, check it is reachable, then `dvc pull` the outputs of the stages in dvc.lock (or
    `targets`) into the cache and the workspace; returns DVC's summary. Raises RemoteError on failure.

    Only locked stages by default: a stage that never ran has nothing on the remote, and a plain `dvc pull`
    fails on it."""
    return _transfer(cfg, "pull", targets, jobs, default=locked_stages)


def locked_stages(root: Path) -> list[str]:
    """The stages dvc.lock in `root` holds outputs of, in its order. Raises RemoteError when there is none."""
    import yaml

    lock = root / "dvc.lock"
    stages = list((yaml.safe_load(lock.read_text()) or {}).get("stages", {})) if lock.is_file() else []
    if not stages:
        raise RemoteError(
            f"{lock}: no locked stages, so nothing to pull; `git pull` the lock or run `dvc repro`"
        )
    return stages


def status(cfg: Config) -> str:
    """Configure the remote, check it is reachable, and say what differs between the local cache and the
    remote (`dvc status --cloud`): what a push would send or a pull would fetch."""
    remote = _ready(cfg)
    out = _dvc(cfg.root, ["status", "--cloud", "--remote", remote.name], remote)
    return f"{remote.describe()}\n{out.strip()}"


def _ready(cfg: Config) -> Remote:
    """The resolved remote, reachable and written to .dvc/config.local (so plain `dvc` commands use it)."""
    remote = resolve(cfg)
    check_reachable(remote)
    _write_config(cfg.root, remote)
    return remote


def _transfer(
    cfg: Config,
    command: str,
    targets: Sequence[str],
    jobs: int | None,
    default: Callable[[Path], list[str]] | None = None,
) -> str:
    remote = _ready(cfg)
    if not targets and default is not None:
        targets = default(cfg.root)
    args = [command, "--remote", remote.name, *(["--jobs", str(jobs)] if jobs else []), *targets]
    out = _dvc(cfg.root, args, remote)
    summary = [line for line in out.splitlines() if line.strip()]
    return f"{remote.describe()}: {summary[-1] if summary else 'done'}"


def _dvc(root: Path, args: list[str], remote: Remote) -> str:
    """Run DVC of this interpreter's environment in `root`; a failure raises RemoteError with its output."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RemoteError(f"`dvc {' '.join(args)}` failed in {root} against {remote.describe()}:\n{tail}")
    return done.stdout + done.stderr
