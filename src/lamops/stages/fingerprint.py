"""Skip a stage whose inputs and outputs are unchanged since its last successful run: DVC's caching rule,
applied to the effective configuration.

`dvc repro` compares a stage's deps and params keys with dvc.lock, which describes params.yaml only: a
profile (`--profile ci`) or `--set` overrides are invisible to it. So the flow keeps its own stamps. A stage's
*inputs digest* covers what dvc.yaml declares for it, read from dvc.yaml with `${section.key}` resolved
against the merged config: the values of its params keys (a key naming a whole section, such as `model`,
means the whole section) and the content of each dep. After a successful run the stage's stamp,
`<root>/.lamops/stages/<profile>/<stage>.json`, records that digest and the digest of each out. The stage is
unchanged when the stamp's inputs digest is today's and every out still has its recorded digest.

Stages without a DVC stage (`promote`: it moves registry aliases) are never skipped. Hashing is by content
(sha256); a small state file caches file hashes by (path, size, mtime_ns) so that re-checking large model
folders costs a `stat` per file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

import lamops

if TYPE_CHECKING:
    from lamops.config import Config
    from lamops.stages.base import StageResult

STATE_DIR = ".lamops"  # under the project root; in .gitignore and .dvcignore
_INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z0-9_.]+)\s*\}")
# What .dvcignore tells DVC to skip when it hashes a folder: byte-code changes with every import, not code.
_IGNORED_DIRS = {"__pycache__"}
_IGNORED_SUFFIXES = {".pyc", ".pyo", ".pyd"}
_IGNORED_NAMES = {".DS_Store"}
_CODE_PREFIX = "src/lamops/"


class StageSpec(BaseModel):
    """What dvc.yaml declares for one stage, paths and values resolved against the effective config."""

    model_config = ConfigDict(frozen=True)

    stage: str
    params: dict[str, Any] = Field(description="Each params key of the stage and its effective value.")
    deps: tuple[Path, ...] = Field(description="Absolute paths of the stage's deps.")
    outs: tuple[Path, ...] = Field(description="Absolute paths of the stage's outs and metrics files.")


class Stamp(BaseModel):
    """The record of a stage's last successful run under one profile."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    profile: str
    inputs: str = Field(description="Inputs digest (params values + deps content) the run saw.")
    outs: dict[str, str | None] = Field(
        description="Digest of each out after the run, by absolute path; null: the run did not write it."
    )
    finished_at: str = Field(description="When the run finished, ISO 8601 UTC.")
    metrics: dict[str, float | int] = Field(description="The run's headline figures, reported on a skip.")


def dvc_file(root: Path) -> Path | None:
    """The dvc.yaml that describes the stages: the project's, else the one shipped with the code."""
    for candidate in (root / "dvc.yaml", Path(lamops.__file__).resolve().parents[2] / "dvc.yaml"):
        if candidate.is_file():
            return candidate
    return None


def stage_spec(cfg: Config, stage: str, dvc_yaml: Path | None = None) -> StageSpec | None:
    """The stage's deps, params and outs from dvc.yaml (default: `dvc_file(cfg.root)`); None when the stage
    has no DVC stage or no dvc.yaml is found, which means it is never skipped."""
    dvc_yaml = dvc_yaml or dvc_file(cfg.root)
    if dvc_yaml is None:
        return None
    definition = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}).get(stage)
    if definition is None:
        return None
    values = cfg.model_dump(mode="json")
    where = f"{dvc_yaml}: stage {stage}"

    def resolve(text: str) -> str:
        return _INTERPOLATION.sub(lambda m: str(_lookup(values, m.group(1), where)), text)

    params = {}
    for entry in definition.get("params", []):
        if not isinstance(entry, str):
            raise ValueError(
                f"{where}: params entry {entry!r}: only keys of the params file are supported "
                "(the flow hashes the effective config, not another file)"
            )
        params[entry] = _lookup(values, entry, where)
    deps = tuple(_dep_path(cfg.root, resolve(p)) for p in _paths(definition.get("deps", []), where))
    outs = tuple(
        cfg.path(resolve(p)) for key in ("outs", "metrics") for p in _paths(definition.get(key, []), where)
    )
    return StageSpec(stage=stage, params=params, deps=deps, outs=outs)


def _paths(entries: list[Any], where: str) -> Iterator[str]:
    """dvc.yaml lists a path as a string, or as a one-key mapping {path: {persist: true, ...}}."""
    for entry in entries:
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, Mapping) and len(entry) == 1:
            yield next(iter(entry))
        else:
            raise ValueError(f"{where}: cannot read path entry {entry!r}")


def _lookup(values: Mapping[str, Any], key: str, where: str) -> Any:
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ValueError(f"{where}: {key!r} is not a key of the config (check dvc.yaml and params.yaml)")
        node = node[part]
    return node


def _dep_path(root: Path, dep: str) -> Path:
    """A dep relative to the project root; the package's code (`src/lamops/...`) is the code that runs here,
    also when the project root is a folder with params.yaml only (tests, a deployment's data folder)."""
    path = root / dep
    if dep.startswith(_CODE_PREFIX) and not path.exists():
        return Path(lamops.__file__).resolve().parent / dep[len(_CODE_PREFIX) :]
    return path


class Hasher:
    """sha256 of files and folders, cached by (size, mtime_ns) in `<root>/.lamops/hashes.json`."""

    def __init__(self, root: Path):
        self.state_file = root / STATE_DIR / "hashes.json"
        try:
            self.cache: dict[str, list[Any]] = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            self.cache = {}
        self.dirty = False

    def file(self, path: Path) -> str:
        stat = path.stat()
        key = str(path)
        cached = self.cache.get(key)
        if cached and cached[0] == stat.st_size and cached[1] == stat.st_mtime_ns:
            return cached[2]
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        self.cache[key] = [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]
        self.dirty = True
        return digest.hexdigest()

    def path(self, path: Path) -> str | None:
        """The digest of a file, or of a folder (its files' relative paths and digests); None if missing."""
        if path.is_file():
            return self.file(path)
        if not path.is_dir():
            return None
        digest = hashlib.sha256()
        for file in sorted(_files(path)):
            digest.update(f"{file.relative_to(path).as_posix()}\0{self.file(file)}\n".encode())
        return "dir:" + digest.hexdigest()

    def save(self) -> None:
        """Write the cache if it changed, forgetting files that are gone (replaced outputs, old runs)."""
        if self.dirty:
            self.cache = {key: value for key, value in self.cache.items() if os.path.exists(key)}
            _write_atomic(self.state_file, json.dumps(self.cache, sort_keys=True))
            self.dirty = False


def _files(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in _IGNORED_DIRS]
        for name in filenames:
            if name not in _IGNORED_NAMES and Path(name).suffix not in _IGNORED_SUFFIXES:
                yield Path(dirpath) / name


def inputs_digest(spec: StageSpec, hasher: Hasher) -> str:
    """One digest of the stage's params values and deps content (a missing dep hashes as missing)."""
    payload = {
        "params": spec.params,
        "deps": {str(dep): hasher.path(dep) for dep in spec.deps},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def stamp_file(cfg: Config, stage: str) -> Path:
    return cfg.root / STATE_DIR / "stages" / cfg.profile / f"{stage}.json"


def unchanged(cfg: Config, spec: StageSpec, digest: str, hasher: Hasher) -> Stamp | None:
    """The stage's stamp if its inputs digest is `digest` and every out still has its recorded digest."""
    try:
        stamp = Stamp.model_validate_json(stamp_file(cfg, spec.stage).read_text())
    except (FileNotFoundError, ValueError):
        return None  # never ran under this profile, or a stamp from another version: run it
    if stamp.inputs != digest or set(stamp.outs) != {str(out) for out in spec.outs}:
        return None
    for out, recorded in stamp.outs.items():
        if hasher.path(Path(out)) != recorded:
            return None
    return stamp


def record(cfg: Config, spec: StageSpec, digest: str, result: StageResult, hasher: Hasher) -> Stamp:
    """Write the stamp of a successful run: its inputs digest and the digest of each out now.

    An out the run did not write is recorded as missing rather than failing the stage: some outs depend on
    the profile (evaluate writes metrics only for the phases it evaluates); `dvc repro` checks the wiring.
    """
    outs = {str(out): hasher.path(out) for out in spec.outs}
    stamp = Stamp(
        stage=spec.stage,
        profile=cfg.profile,
        inputs=digest,
        outs=outs,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics=result.metrics,
    )
    _write_atomic(stamp_file(cfg, spec.stage), stamp.model_dump_json(indent=2))
    return stamp


def run_unless_unchanged(
    cfg: Config, stage: str, run: Callable[[Config], StageResult], *, force: bool = False
) -> StageResult:
    """Run `stage` with `run(cfg)` unless it is unchanged since its last successful run (see the module
    docstring); a skipped stage returns a StageResult saying so, with the metrics of the run it kept.

    `force` runs it anyway. Either way a successful run leaves a fresh stamp.
    """
    from lamops.stages.base import StageResult

    spec = stage_spec(cfg, stage)
    if spec is None:
        return run(cfg)
    started = time.monotonic()
    hasher = Hasher(cfg.root)
    digest = inputs_digest(spec, hasher)
    stamp = None if force else unchanged(cfg, spec, digest, hasher)
    if stamp is not None:
        hasher.save()
        return StageResult(
            stage=stage,
            outputs=[out for out, out_digest in stamp.outs.items() if out_digest is not None],
            metrics=stamp.metrics,
            seconds=time.monotonic() - started,
            message=f"unchanged since {stamp.finished_at}, skipped (inputs digest {digest[:12]})",
        )
    result = run(cfg)
    record(cfg, spec, digest, result, hasher)
    hasher.save()
    return result


def _write_atomic(path: Path, text: str) -> None:
    """Write `path` through a temporary file beside it and a rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
