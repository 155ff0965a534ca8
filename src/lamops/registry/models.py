"""Registry IO for trained models: log a phase's `save_pretrained` folder as an MLflow model, register it as a
new version of its registered model with lineage tags, load it back, and move aliases.

The model is logged with the transformers flavour (model + tokenizer components, task `text-generation`), so
it reloads as Hugging Face objects (`load_registered`) or as a pyfunc that generates text. Lineage tags link a
version to the git commit, the dvc.lock hashes of its data and its parent version. The promotion policy
(which version gets `champion`) is a pure function elsewhere; this module only reads and writes the registry.

MLflow 3 notes: the transformers flavour cannot log a checkpoint path with transformers 5 (its task lookup
fails), so the folder is loaded and logged as components; `pip_requirements` must be explicit (inferring them
imports torchvision, which is not installed).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TAG_PREFIX = "lamops."
GIT_COMMIT_TAG = "lamops.git_commit"
GIT_DIRTY_TAG = "lamops.git_dirty"
DATA_TAG_PREFIX = "lamops.data."
PARENT_TAG = "lamops.parent"
UNKNOWN = "unknown"
# Value of a data tag whose path dvc.lock does not list (or when there is no dvc.lock).
NOT_IN_LOCK = "not-in-dvc.lock"
# Default generation length of the logged pyfunc; callers override it with predict(params=...).
MAX_NEW_TOKENS = 128


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered model; `model_uri` (`models:/name/version`) loads it."""

    name: str
    version: int
    model_uri: str
    run_id: str


def lineage_tags(root: Path, deps: list[str]) -> dict[str, str]:
    """Tags linking a model to the code and data it came from.

    `lamops.git_commit` (HEAD of the git repository holding `root`, "unknown" outside git), `lamops.git_dirty`
    ("true" when tracked files differ from HEAD, "unknown" outside git), and `lamops.data.<path>` for each of
    `deps`: its md5 in `root/dvc.lock` (outs first, then deps), or "not-in-dvc.lock".
    """
    root = Path(root)
    tags = {GIT_COMMIT_TAG: UNKNOWN, GIT_DIRTY_TAG: UNKNOWN}
    commit = _git(root, "rev-parse", "HEAD")
    if commit is not None:
        tags[GIT_COMMIT_TAG] = commit
        status = _git(root, "status", "--porcelain", "--untracked-files=no")
        if status is not None:
            tags[GIT_DIRTY_TAG] = "true" if status else "false"
    hashes = dvc_lock_hashes(root / "dvc.lock")
    for dep in deps:
        key = _lock_path(dep)
        tags[DATA_TAG_PREFIX + key] = hashes.get(key, NOT_IN_LOCK)
    return tags


def _git(root: Path, *args: str) -> str | None:
    """Stripped stdout of a git command in `root`, or None when git is missing or the command fails."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _lock_path(path: str) -> str:
    return str(PurePosixPath(path.replace("\\", "/")))


def dvc_lock_hashes(lock_file: Path) -> dict[str, str]:
    """{path: md5} over every stage's outs and deps in a dvc.lock (an out's hash wins); {} if no file."""
    import yaml

    lock_file = Path(lock_file)
    if not lock_file.is_file():
        return {}
    try:
        lock = yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{lock_file}: not valid YAML ({error}); regenerate it with `dvc repro`") from error
    stages = lock.get("stages") if isinstance(lock, dict) else None
    if not isinstance(stages, dict):
        raise ValueError(f"{lock_file}: no `stages` mapping; is this a DVC 2/3 lock file?")
    found: dict[str, str] = {}
    for kind in ("deps", "outs"):  # outs second, so they overwrite: the producing stage is authoritative
        for stage in stages.values():
            for entry in (stage or {}).get(kind) or []:
                value = _entry_hash(entry)
                if value is not None:
                    found[_lock_path(str(entry["path"]))] = value
    return found


def _entry_hash(entry: Any) -> str | None:
    # DVC 3 writes `hash: md5` (the algorithm) next to `md5: <value>`; cloud outputs may carry etag/checksum.
    if not isinstance(entry, dict) or "path" not in entry:
        return None
    for field in ("md5", "etag", "checksum"):
        if entry.get(field):
            return str(entry[field])
    return None


def pip_requirements() -> list[str]:
    """The packages a logged model needs, pinned to this environment's versions (local labels dropped)."""
    import torch
    import transformers

    import mlflow

    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"transformers=={transformers.__version__}",
    ]


def log_and_register(
    model_dir: Path,
    name: str,
    *,
    tags: dict[str, str],
    parent: str | None,
    signature_example: tuple[str, Any] | None,
    task: str = "text-generation",
) -> RegisteredVersion:
    """Log the `save_pretrained` folder `model_dir` in the active MLflow run and register it as a new version
    of `name` (created if missing), tagged with `tags` and `lamops.parent` = `parent` ("name/version").

    `signature_example` is an (input, output) pair the signature is inferred from (text generation: prompt
    and completion); None gives the flavour's default signature. `task` "text-classification" logs a
    sequence classifier (the reward model), anything else a causal LM. The run gets the same tags, so a run
    links to its model.
    """
    from mlflow.models import infer_signature
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError(
            f"log_and_register({name!r}): no active MLflow run; call it inside `stage_run(cfg, stage)`"
        )
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{model_dir}: no config.json; expected a save_pretrained folder (lamops.models.factory.save)"
        )
    version_tags = {key: str(value) for key, value in tags.items()}
    if parent:
        version_tags[PARENT_TAG] = parent

    auto = AutoModelForSequenceClassification if task == "text-classification" else AutoModelForCausalLM
    model = auto.from_pretrained(model_dir, dtype="auto", local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    signature = None
    if signature_example is not None:
        prompt, output = signature_example
        params = {"max_new_tokens": MAX_NEW_TOKENS} if task == "text-generation" else None
        signature = infer_signature(prompt, output, params=params)
    info = mlflow.transformers.log_model(
        {"model": model, "tokenizer": tokenizer},
        name=name,
        task=task,
        signature=signature,
        pip_requirements=pip_requirements(),
        tags=version_tags,
    )
    from lamops.agents.plans import FILE as PLAN_LIBRARY

    if (model_dir / PLAN_LIBRARY).is_file():  # the agent's first-step copies travel with the version's run
        mlflow.log_artifact(str(model_dir / PLAN_LIBRARY))
    registered = mlflow.register_model(info.model_uri, name, tags=version_tags)
    if version_tags:
        mlflow.set_tags(version_tags)
    version = int(registered.version)
    return RegisteredVersion(name, version, f"models:/{name}/{version}", run.info.run_id)


def load_registered(uri: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The Hugging Face model (eval mode) and tokenizer of `models:/name/version` or `models:/name@alias`."""
    import mlflow

    components = mlflow.transformers.load_model(uri, return_type="components")
    model, tokenizer = components["model"], components["tokenizer"]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def load_registered_plans(uri: str):
    """The plan library (`lamops.agents.plans`) logged in the run of `models:/name/version` or
    `models:/name@alias`; None when that run logged none."""
    import tempfile

    import mlflow
    from lamops.agents.plans import FILE, PlanLibrary

    name, _, ref = uri[len("models:/") :].partition("/")
    name, _, alias = name.partition("@")
    client = _client()
    version = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, ref)
    if not version.run_id:
        return None
    names = {Path(a.path).name for a in client.list_artifacts(version.run_id)}
    if FILE not in names:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=FILE, dst_path=tmp)
        return PlanLibrary.load(Path(tmp))


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def set_alias(name: str, alias: str, version: int | str) -> None:
    """Point `alias` of registered model `name` at `version` (moving it from any other version)."""
    _client().set_registered_model_alias(name, alias, str(version))


def get_alias(name: str, alias: str) -> int | None:
    """The version `alias` points at, or None when the alias (or the registered model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return int(_client().get_model_version_by_alias(name, alias).version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def delete_alias(name: str, alias: str) -> None:
    """Remove `alias` from registered model `name`."""
    _client().delete_registered_model_alias(name, alias)


def tag_version(name: str, version: int | str, key: str, value: str) -> None:
    """Set tag `key` = `value` on version `version` of registered model `name`."""
    _client().set_model_version_tag(name, str(version), key, value)


def version_tags(name: str, version: int | str) -> dict[str, str]:
    """The tags of one registered model version."""
    return dict(_client().get_model_version(name, str(version)).tags)


MODEL_SHA_TAG = "lamops.model_sha"


def model_sha(model_dir: Path) -> str:
    """sha256 over the files of a save_pretrained folder (names and bytes): the same weights and tokenizer
    give the same value, so a later phase can find the registered version of the folder it starts from."""
    import hashlib

    digest = hashlib.sha256()
    root = Path(model_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def find_version(name: str, tag: str, value: str) -> int | None:
    """The newest version of registered model `name` tagged `tag` = `value`, None if there is none (or no
    registered model `name`)."""
    versions = [
        int(v.version)
        for v in _client().search_model_versions(f"name = '{name}'")
        if (v.tags or {}).get(tag) == value
    ]
    return max(versions) if versions else None
