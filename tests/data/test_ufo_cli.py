"""`lamops ufo import` / `lamops ufo export` from the command line."""

import json
from pathlib import Path

from typer.testing import CliRunner

from lamops.cli import app

FIXTURES = Path(__file__).parent / "ufo_fixtures"
runner = CliRunner()


def test_import_prints_the_summary_and_writes_records(tmp_path: Path):
    result = runner.invoke(app, ["ufo", "import", str(FIXTURES), "--out", str(tmp_path / "imported")])
    assert result.exit_code == 0, result.output
    assert "What lamops can use" in result.output and "LAM1" in result.output
    pairs = (tmp_path / "imported/pairs.jsonl").read_text().splitlines()
    assert pairs and all(json.loads(line)["source"] == "ufo" for line in pairs)


def test_export_writes_ufo_task_files(tmp_path: Path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps(
            {
                "task_id": "howto-1",
                "task": "Bold the title in Word",
                "plan": ["Select it.", "Click Bold."],
                "source": "howto",
                "origin": "o",
            }
        )
        + "\n"
    )
    result = runner.invoke(app, ["ufo", "export", str(pairs), "--out", str(tmp_path / "ufo")])
    assert result.exit_code == 0, result.output
    files = list((tmp_path / "ufo").rglob("*.json"))
    assert len(files) == 1
    task = json.loads(files[0].read_text())
    assert task == {
        "app": "word",
        "unique_id": "howto-1",
        "task": "Bold the title in Word",
        "refined_steps": ["Select it.", "Click Bold."],
    }
    assert "python -m dataflow" in result.output


def test_import_of_a_missing_folder_is_a_clear_error(tmp_path: Path):
    result = runner.invoke(app, ["ufo", "import", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file or folder" in result.output
