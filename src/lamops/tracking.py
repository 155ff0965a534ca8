"""MLflow tracking of stage runs: one run per stage, named after it, nested under the pipeline's run.

A stage calls `stage_run(cfg, name)` and logs its section's params, its counts, its datasets (as MLflow
dataset inputs) and its reports through the returned `StageRun`. The tracking URI comes from
$MLFLOW_TRACKING_URI when set (a tracking server), else from params (`sqlite:///mlflow.db` under the
project root); a parent run id in $LAMOPS_PARENT_RUN_ID (set by the pipeline flow) nests the stage's run
under it.

Server mode (an http(s):// tracking URI) and an s3:// artifact root are checked once per process before the
first run: an unreachable server or bucket fails in seconds with `TrackingUnavailable`, naming what and where,
instead of MLflow's minutes of retries. The embedded sqlite default skips the checks and imports nothing for
them. mlflow/README.md describes the team server (PostgreSQL backend, S3 artifacts)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

    from lamops.config import Config

PARENT_RUN_ENV = "LAMOPS_PARENT_RUN_ID"
# Seconds to wait for the tracking server's /health or the S3 endpoint before calling it unreachable: long
# enough for a loaded server on a slow network, short enough that a wrong URI fails before anyone waits.
CHECK_TIMEOUT_S = 4.0
# Where the S3 endpoint comes from, in the order MLflow's own S3 artifact store reads them.
S3_ENDPOINT_ENVS = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_HOW_TO_START = "start it (mlflow/start-server.sh, see mlflow/README.md) or set MLFLOW_TRACKING_URI"
# (tracking URI, artifact root) pairs already found reachable in this process.
_reachable: set[tuple[str, str]] = set()


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking server or the S3 artifact store cannot be reached; the message says which, where
    and what to do."""


# MLflow 3's experiment kind (the UI reads the tag to choose an experiment's views): lamops trains models, so
# its experiment is "custom_model_development" (the UI's machine-learning kind: runs, metrics, models and
# their comparison) rather than "genai_development" (traces). Without the tag MLflow 3's UI asks, or guesses.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # a run's description, rendered as Markdown on its page


def tracking_uri(cfg: Config) -> str:
    """$MLFLOW_TRACKING_URI, else params' uri with a relative sqlite path resolved against the root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking.uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        uri = prefix + str(cfg.path(uri[len(prefix) :]))
    return uri


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def artifact_location(cfg: Config) -> str | None:
    """Where a new experiment keeps its artifacts: params' artifact_root as a URI. A local folder means
    nothing to a tracking server (its clients share no disk), so in server mode it gives None: the server's
    own --artifacts-destination (mlflow/start-server.sh)."""
    root = cfg.tracking.artifact_root
    if "://" in root:
        return root
    return None if is_server(tracking_uri(cfg)) else cfg.path(root).resolve().as_uri()


def check_reachable(cfg: Config) -> None:
    """Raise TrackingUnavailable when the tracking server (server mode) or the s3:// artifact root's bucket
    does not answer within CHECK_TIMEOUT_S. Checked once per process; free for a sqlite store and a local
    artifact root."""
    uri, root = tracking_uri(cfg), cfg.tracking.artifact_root
    if (uri, root) in _reachable:
        return
    if is_server(uri):
        _check_server(uri)
    if root.startswith("s3://"):
        _check_bucket(root)
    _reachable.add((uri, root))


def _check_server(uri: str) -> None:
    import requests

    source = "$MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "params' tracking.uri"
    where = f"MLflow tracking server {uri} (from {source})"
    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=CHECK_TIMEOUT_S, verify=_tls_verify())
    except requests.exceptions.Timeout:
        raise TrackingUnavailable(
            f"{where}: unreachable (no answer within {CHECK_TIMEOUT_S:g} s); {_HOW_TO_START}"
        ) from None
    except requests.exceptions.ConnectionError as error:
        raise TrackingUnavailable(
            f"{where}: unreachable ({_connection_reason(error)}); {_HOW_TO_START}"
        ) from None
    if response.status_code != 200:
        raise TrackingUnavailable(
            f"{where}: GET /health answered HTTP {response.status_code}, not 200; is this an MLflow server?"
        )


def _tls_verify() -> bool | str:
    # The same TLS settings the MLflow client uses for this server.
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        return False
    return os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True


def _connection_reason(error: Exception) -> str:
    text = str(error).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "resolution" in text:
        return "unknown host"
    return type(error).__name__


def _check_bucket(root: str) -> None:
    """head_bucket on the artifact root's bucket, at the endpoint MLflow's S3 store will use, with one
    attempt and short timeouts (boto3's defaults retry for about a minute)."""
    from urllib.parse import urlparse

    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    bucket = urlparse(root).netloc
    endpoint = next((os.environ[name] for name in S3_ENDPOINT_ENVS if os.environ.get(name)), None)
    where = f"S3 artifact store {root} (bucket {bucket!r} at {endpoint or 'the AWS default endpoint'})"
    config = BotoConfig(
        connect_timeout=CHECK_TIMEOUT_S, read_timeout=CHECK_TIMEOUT_S, retries={"total_max_attempts": 1}
    )
    try:
        boto3.client("s3", endpoint_url=endpoint, config=config).head_bucket(Bucket=bucket)
    except NoCredentialsError:
        raise TrackingUnavailable(
            f"{where}: no AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        ) from None
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", "?"))
        if code in ("404", "NoSuchBucket"):
            reason = "no such bucket; create it or fix tracking.artifact_root"
        elif code in ("403", "AccessDenied"):
            reason = "access denied; check the AWS credentials in the environment (AWS_ACCESS_KEY_ID, ...)"
        else:
            reason = f"head_bucket failed with {code}"
        raise TrackingUnavailable(f"{where}: {reason}") from None
    except BotoCoreError as error:
        raise TrackingUnavailable(
            f"{where}: unreachable ({type(error).__name__}); start it, or point MLFLOW_S3_ENDPOINT_URL "
            f"(or AWS_ENDPOINT_URL) at a running one"
        ) from None


def setup(cfg: Config) -> str:
    """Point MLflow at the configured store and experiment; returns the experiment id. Raises
    TrackingUnavailable first when the server or the artifact bucket does not answer."""
    check_reachable(cfg)
    import mlflow

    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, which would then override every later
    # config's store in this process (and mean "a tracking server" to tracking_uri): keep the user's value.
    user_value = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri(cfg))
    if user_value is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = user_value
    experiment = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        return mlflow.create_experiment(
            cfg.tracking.experiment,
            artifact_location=artifact_location(cfg),
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    if EXPERIMENT_KIND_TAG not in experiment.tags:  # made before lamops set it; a kind chosen in the UI stays
        mlflow.MlflowClient().set_experiment_tag(
            experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
        )
    return experiment.experiment_id


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


class StageRun:
    """What a stage logs to its MLflow run."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def describe(self, markdown: str) -> None:
        """The run's description (its Overview page's Markdown), cut to what a tag holds (8,000 chars)."""
        import mlflow

        mlflow.set_tag(NOTE_TAG, markdown[:8000])

    def log_params(self, params: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Numbers only; nested mappings become dotted names (dropped.non_english)."""
        import mlflow

        flat = {k: float(v) for k, v in flatten(metrics).items() if isinstance(v, int | float)}
        if flat:
            mlflow.log_metrics(flat)

    def log_dataset(
        self, path: Path, rows: Sequence[BaseModel | Mapping[str, Any]], name: str, context: str
    ) -> None:
        """Log `rows` (records read from `path`, or flat dicts made of them) as an MLflow dataset input."""
        import pandas as pd
        from pydantic import BaseModel

        import mlflow

        dicts = (r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in rows)
        frame = pd.DataFrame([{k: _cell(v) for k, v in row.items()} for row in dicts])
        dataset = mlflow.data.from_pandas(frame, source=str(path), name=name)
        mlflow.log_input(dataset, context=context)

    def log_json(self, data: Any, artifact_file: str) -> None:
        import mlflow

        mlflow.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        import mlflow

        mlflow.log_text(text, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """A matplotlib figure as an image artifact (closed afterwards)."""
        import matplotlib.pyplot as plt

        import mlflow

        mlflow.log_figure(figure, artifact_file)
        plt.close(figure)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path)


def _cell(value: Any) -> Any:
    # Dataset schemas want flat columns: lists and dicts are logged as their JSON text.
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if isinstance(value, list | dict) else value


@contextmanager
def stage_run(cfg: Config, stage: str, *, system_metrics: bool = False) -> Iterator[StageRun]:
    """An MLflow run named `stage`, tagged with the stage and profile, nested under $LAMOPS_PARENT_RUN_ID;
    with `system_metrics`, MLflow samples CPU, memory (and GPU, where there is one) while it is open."""
    import mlflow

    experiment_id = setup(cfg)
    parent = os.environ.get(PARENT_RUN_ENV)
    tags = {"lamops.stage": stage, "lamops.profile": cfg.profile}
    if parent:
        tags["mlflow.parentRunId"] = parent
    if system_metrics:
        mlflow.set_system_metrics_sampling_interval(cfg.tracking.system_metrics_interval_s)
    with mlflow.start_run(
        run_name=stage, experiment_id=experiment_id, tags=tags, log_system_metrics=system_metrics
    ) as run:
        tracked = StageRun(run.info.run_id)
        section = getattr(cfg, stage, None)
        if section is not None:
            tracked.log_params(section.model_dump(mode="json"))
        yield tracked


@contextmanager
def pipeline_run(cfg: Config, stages: list[str]) -> Iterator[str]:
    """A parent MLflow run `pipeline` for one flow run; stage runs started inside nest under it."""
    from mlflow.tracking import MlflowClient

    experiment_id = setup(cfg)
    client = MlflowClient(tracking_uri(cfg))
    run = client.create_run(
        experiment_id,
        run_name="pipeline",
        tags={"lamops.stage": "pipeline", "lamops.profile": cfg.profile, "lamops.stages": ",".join(stages)},
    )
    previous = os.environ.get(PARENT_RUN_ENV)
    os.environ[PARENT_RUN_ENV] = run.info.run_id
    status = "FAILED"
    try:
        yield run.info.run_id
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status)
        if previous is None:
            os.environ.pop(PARENT_RUN_ENV, None)
        else:
            os.environ[PARENT_RUN_ENV] = previous
