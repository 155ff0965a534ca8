"""How long DVC takes to decide there is nothing to do: a no-op `dvc repro` and `dvc status`.

By default on a temporary copy of the project (dvc.yaml, params, src/, infra/; fresh git + DVC): one real
`dvc repro` of the chosen stages first (default `templates,sources`, the cheap ones; `--stages datasets`:
every data stage; `--full`: the whole pipeline, ~20 min on 2 cores), then the no-op runs. With
`--project DIR` it times DIR as it is and builds nothing there unless `--build`: if the stages are not
current it prints what `dvc status` says and exits 2.

Target (issue 6): a second `dvc repro` of the whole default pipeline does nothing in under 10 s.

Output: one figure per line, `name: value unit`: dvc_repro_first (the real run, when there is one),
dvc_repro_noop_median, dvc_repro_noop_min, dvc_status_median, dvc_status_min, locked_stages, tracked_files.

Usage: python bench/dvc_repro.py [--stages a,b | --full] [--project DIR [--build]] [--runs N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# What dvc.yaml's stages depend on besides their upstream outputs.
PROJECT_FILES = ("dvc.yaml", "params.yaml", "params", ".dvcignore", "src", "infra")


def dvc(args: list[str], cwd: Path) -> tuple[float, str]:
    """Wall time and output of `dvc args` in `cwd` (this venv's DVC and lamops first on PATH)."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "LAMOPS_PROGRESS": "0",
    }
    env.setdefault("DVC_SITE_CACHE_DIR", "/tmp/lamops-dvc-site")
    start = time.perf_counter()
    done = subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    out = done.stdout + done.stderr
    if done.returncode != 0:
        sys.exit(f"`dvc {' '.join(args)}` failed in {cwd}:\n{out[-3000:]}")
    return seconds, out


def copy_project(dest: Path) -> Path:
    """The project's definition and code in a fresh git + DVC repo at `dest`, without data or models."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for rel in PROJECT_FILES:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=ignore)
        elif src.is_file():
            shutil.copy(src, dest / rel)
    (dest / ".gitignore").write_text("mlflow.db\nmlartifacts/\ncheckpoints/\n")
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    dvc(["init", "-q"], dest)
    return dest


def lock_size(project: Path) -> tuple[int, int]:
    """Stages in dvc.lock and the files of their outputs: what a no-op repro checks (targets and upstream)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text()).get("stages", {})
    return len(lock), sum(out.get("nfiles", 1) for stage in lock.values() for out in stage.get("outs", []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time a no-op `dvc repro` and `dvc status`.")
    parser.add_argument("--stages", default="templates,sources", help="Comma-separated dvc.yaml stages.")
    parser.add_argument("--full", action="store_true", help="The whole pipeline (overrides --stages).")
    parser.add_argument("--project", type=Path, help="Time this project as it is (no copy).")
    parser.add_argument("--build", action="store_true", help="With --project: reproduce stale stages first.")
    parser.add_argument("--runs", type=int, default=5, help="No-op runs to time (median and minimum).")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary copy and print its path.")
    args = parser.parse_args(argv)
    targets = [] if args.full else [s for s in args.stages.split(",") if s]

    tmp = None
    if args.project:
        project = args.project.resolve()
        _, status = dvc(["status", *targets], project)
        stale = "up to date" not in status
        if stale and not args.build:
            print(f"{project}: stages not current, nothing timed (pass --build to reproduce them):\n{status}")
            return 2
        if stale:
            seconds, _ = dvc(["repro", *targets], project)
            print(f"dvc_repro_first: {seconds:.1f} s")
    else:
        tmp = Path(tempfile.mkdtemp(prefix="lamops-dvc-bench-"))
        project = copy_project(tmp)
        seconds, _ = dvc(["repro", *targets], project)
        print(f"dvc_repro_first: {seconds:.1f} s")

    noop, status = [], []
    for _ in range(args.runs):
        seconds, out = dvc(["repro", *targets], project)
        if "Running stage" in out:
            sys.exit(f"a repro after a repro ran stages (it should skip all):\n{out[-3000:]}")
        noop.append(seconds)
        seconds, _ = dvc(["status", *targets], project)
        status.append(seconds)
    print(f"dvc_repro_noop_median: {statistics.median(noop):.2f} s")
    print(f"dvc_repro_noop_min: {min(noop):.2f} s")
    print(f"dvc_status_median: {statistics.median(status):.2f} s")
    print(f"dvc_status_min: {min(status):.2f} s")
    stages, files = lock_size(project)
    print(f"locked_stages: {stages} stages")
    print(f"tracked_files: {files} files")
    if tmp and args.keep:
        print(f"project: {tmp}", file=sys.stderr)
    elif tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
