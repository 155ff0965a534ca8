"""A small data project (the `ci` profile, in-process data stages, ~40 tasks), built once per session (per
xdist worker) by the `data_project` fixture of tests/conftest.py and shared by the modules that need data:
tests/stages/test_data_stages.py reads it, tests/stages/test_train_stages.py and
tests/stages/test_evaluate_promote.py train and evaluate in a copy of it (helpers.copy_project).
tests/integration/test_flow_resume.py runs the same overrides through the flow."""

from __future__ import annotations

import shutil
from pathlib import Path

PROFILE = "ci"
# Over the ci profile: a smaller corpus, every data stage in-process (no Ray start-up).
DATA = [
    "sources.docs_pages=2",
    "sources.howto_articles=60",
    "sources.queries=20",
    "collect.workers=0",
    "evolve.workers=0",
    "instantiate.max_tasks=40",
    "instantiate.workers=0",
    "execute.workers=0",
    "judge.workers=0",
]
TASKS = 40  # instantiate.max_tasks above
DATA_STAGES = ("templates", "sources", "collect", "evolve", "instantiate", "execute", "judge", "datasets")


def config(root: Path, *extra: str):
    """The project's config: params.yaml, the ci profile, DATA, then `extra`."""
    from lamops.config import load_config

    return load_config(root / "params.yaml", PROFILE, [*DATA, *extra])


def build(root: Path, repo: Path) -> Path:
    """A project at `root`: params.yaml, params/ and infra/ of the repository `repo`, every data stage run."""
    from lamops.stages import get_stage

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo / "params.yaml", root)
    for name in ("params", "infra"):
        shutil.copytree(repo / name, root / name)
    cfg = config(root)
    for stage in DATA_STAGES:
        get_stage(stage)(cfg)
    return root
