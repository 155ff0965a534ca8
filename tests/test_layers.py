"""The layering of lamops (pyproject.toml's [tool.importlinter] contracts), checked with import-linter: a
module never imports from a layer above its own, domain code never imports Prefect, loading params imports no
torch or Ray, and no package has an import cycle. A planted upward import must fail
with both modules named."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = str(Path(sys.executable).parent / "lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [LINT, "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layers_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_fails_naming_both_modules(tmp_path):
    shutil.copytree(
        ROOT / "src" / "lamops", tmp_path / "src" / "lamops", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    ribbon = tmp_path / "src" / "lamops" / "env" / "ribbon.py"
    # The environment reaching up into the stage layer, lazily, as a shortcut would.
    ribbon.write_text(
        ribbon.read_text() + "\n\ndef _shortcut():\n    from lamops.stages.base import StageResult\n"
    )
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "lamops.env is not allowed to import lamops.stages" in result.stdout
    assert "lamops.env.ribbon -> lamops.stages.base" in result.stdout
