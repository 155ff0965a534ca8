"""Record what the pipeline flow built in DVC, as `dvc repro` would: after a stage succeeds (or is skipped as
unchanged), `dvc commit -f <stage>` puts its outs in the DVC cache and its deps, params and outs in dvc.lock,
so that `dvc status` is clean and a following `dvc repro` does nothing.

dvc.lock describes the project's params.yaml alone (dvc.yaml reads its params from it): a run under another
profile, with `--set` overrides or another params file cannot be described by it and is not recorded; nor
is a project without DVC (no `.dvc` folder) or without its own dvc.yaml. `not_recorded_because` says why in
one line, for the flow to log once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from lamops.config import DEFAULT_PROFILE

if TYPE_CHECKING:
    from lamops.config import Config

PARAMS_FILE = "params.yaml"  # the file dvc.yaml's `params:` keys are read from (DVC's default)


def not_recorded_because(cfg: Config, params: str | Path, overrides: Sequence[str] = ()) -> str | None:
    """None when this run's outputs can be recorded in DVC; else one line saying why they are not."""
    root = cfg.root
    if Path(params).resolve() != (root / PARAMS_FILE).resolve():
        return (
            f"outputs are not recorded in DVC: params file {params} is not {PARAMS_FILE}, "
            "which dvc.yaml reads"
        )
    if cfg.profile != DEFAULT_PROFILE:
        return (
            f"outputs are not recorded in DVC: profile {cfg.profile!r} (dvc.lock describes {PARAMS_FILE} "
            f"alone); the flow keeps its own stamps in .lamops/stages/{cfg.profile}/"
        )
    if overrides:
        return (
            f"outputs are not recorded in DVC: --set {' '.join(overrides)} (dvc.lock describes "
            f"{PARAMS_FILE} alone); the flow keeps its own stamps in .lamops/stages/{cfg.profile}/"
        )
    if not (root / "dvc.yaml").is_file():
        return f"outputs are not recorded in DVC: {root} has no dvc.yaml of its own"
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        Repo.find_root(str(root))
    except NotDvcRepoError:
        return f"outputs are not recorded in DVC: {root} is not in a DVC repository (no .dvc folder)"
    return None


def has_dvc_stage(cfg: Config, stage: str) -> bool:
    """Whether the project's dvc.yaml declares `stage` (promote, for one, is not a DVC stage)."""
    dvc_yaml = cfg.root / "dvc.yaml"
    if not dvc_yaml.is_file():
        return False
    return stage in ((yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {})


def commit_stage(cfg: Config, stage: str) -> None:
    """`dvc commit -f <stage>` of the project at cfg.root: the stage's outs into the DVC cache, its entry of
    dvc.lock rewritten from the workspace (one stage per call, under DVC's repository lock). Raises whatever
    DVC raises (a missing out, the lock held by a running `dvc repro`, ...).

    DVC resolves some paths against the working directory (its run-cache entry of the stage is created
    relative to it, and fails outside the repository), so the commit runs in cfg.root, as the CLI would.
    """
    from dvc.repo import Repo

    with contextlib.chdir(cfg.root), Repo(str(cfg.root)) as repo:
        repo.commit(f"{cfg.root / 'dvc.yaml'}:{stage}", force=True)
