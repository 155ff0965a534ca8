"""scripts/results_doc.py: a profile's results page holds the run's phase table verbatim, every stage's
seconds and the provenance, and refuses input that is not a run's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from helpers import ROOT

spec = importlib.util.spec_from_file_location("results_doc", ROOT / "scripts" / "results_doc.py")
results_doc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_doc)

TABLE = "# lamops phase table\n\n## Online\n\n| model | TSR % |\n|---|---|\n| LAM4 | 71.5 |\n"


def test_the_page_holds_the_phase_table_the_stage_seconds_and_where_it_ran(tmp_path: Path) -> None:
    (tmp_path / "reports" / "evaluate").mkdir(parents=True)
    (tmp_path / "reports" / "evaluate" / "phase_table.md").write_text(TABLE)
    run = tmp_path / "run.json"
    run.write_text(
        json.dumps([{"stage": "imitate", "seconds": 90.0}, {"stage": "evaluate", "seconds": 30.0}])
    )
    out = tmp_path / "results-quality.md"
    assert (
        results_doc.main([str(run), "--project", str(tmp_path), "--profile", "quality", "--out", str(out)])
        == 0
    )
    page = out.read_text()
    assert "| imitate | 90.0 |" in page and "| evaluate | 30.0 |" in page and "2.0 min" in page
    assert "## Phase table" in page and "| LAM4 | 71.5 |" in page and "# lamops phase table" not in page
    assert (
        "- commit: unknown" in page and "CPU cores" in page and not out.with_name(out.name + ".tmp").exists()
    )


def test_input_that_is_not_a_run_is_refused_naming_it(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run.json"
    run.write_text("lamops pipeline: 15 stage(s)")
    out = tmp_path / "page.md"
    assert results_doc.main([str(run), "--project", str(tmp_path), "--profile", "q", "--out", str(out)]) == 2
    assert "run.json: not the JSON" in capsys.readouterr().err and not out.exists()
    run.write_text(json.dumps([{"stage": "imitate", "seconds": 1.0}]))
    assert results_doc.main([str(run), "--project", str(tmp_path), "--profile", "q", "--out", str(out)]) == 2
    assert "phase_table.md: missing" in capsys.readouterr().err and not out.exists()
