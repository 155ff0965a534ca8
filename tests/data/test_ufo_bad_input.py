"""`lamops ufo import` with hostile input: each bad file is rejected with its reason while the others import,
the output folder appears whole or not at all, and special files (FIFOs, dangling links) are never opened."""

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lamops.cli import app
from lamops.data.ufo import import_dir

GOOD = Path(__file__).parent / "ufo_fixtures/results/dataflow/execution_pass/bulleted.json"
runner = CliRunner()


def _record(unique_id: str) -> dict:
    record = json.loads(GOOD.read_text(encoding="utf-8"))
    record["unique_id"] = unique_id
    return record


def _steps(record: dict) -> list[dict]:
    return record["instantiation_result"]["prefill"]["result"]["instantiated_plan"]


def _write(folder: Path, name: str | bytes, record: dict) -> None:
    # ensure_ascii keeps a lone surrogate as the valid JSON escape "\ud800", as a real file would hold it
    text = json.dumps(record).encode("utf-8")
    path = os.path.join(os.fsencode(folder), name if isinstance(name, bytes) else name.encode())
    with open(path, "wb") as handle:
        handle.write(text)


def _bad_folder(root: Path) -> Path:
    """One good file and one of each kind of bad file, whose records would crash the writer or lie."""
    folder = root / "results"
    folder.mkdir()
    _write(folder, "good.json", _record("good"))
    surrogate = _record("surrogate")
    surrogate["original"]["original_task"] = "Bold the title \ud800"
    _write(folder, "surrogate.json", surrogate)
    deep = _record("deep")
    nested: dict = {"x": 1}
    for _ in range(300):
        nested = {"a": nested}
    _steps(deep)[0]["Args"] = nested
    _write(folder, "deep.json", deep)
    _write(folder, b"caf\xe9.json", _record("latin1_name"))
    missiles = _record("missiles")
    _steps(missiles)[0]["Function"] = "launch_missiles"
    _write(folder, "missiles.json", missiles)
    return folder


def test_a_plan_step_is_checked_against_ufos_own_command_names(tmp_path: Path):
    """UFO's names (controller.py and the COM clients of microsoft/UFO): its no-action command is named "",
    the Operator commands and the Excel and PowerPoint ones are UFO's too; "no_action" is none of them."""
    folder = tmp_path / "results"
    folder.mkdir()
    names = ["", "double_click", "keypress", "wait", "get_range_values", "set_background_color", "no_action"]
    for k, function in enumerate(names):
        record = _record(f"r{k}")
        _steps(record)[0]["Function"] = function
        _write(folder, f"r{k}.json", record)
    result = import_dir(folder, builtin_templates=())
    assert sorted(p.task_id for p in result.pairs) == [f"r{k}" for k in range(len(names) - 1)]
    assert [(Path(r.origin).name, r.reason) for r in result.rejected] == [("r6.json", "unknown_function")]


def test_each_bad_file_is_rejected_with_its_reason_and_the_good_one_imports(tmp_path: Path):
    result = import_dir(_bad_folder(tmp_path), builtin_templates=())

    assert [p.task_id for p in result.pairs] == ["good"]
    reasons = {Path(r.origin).name: r.reason for r in result.rejected}
    assert reasons == {
        "surrogate.json": "bad_text",
        "deep.json": "too_deep",
        "caf\\xe9.json": "bad_file_name",
        "missiles.json": "unknown_function",
    }
    assert "launch_missiles" in next(r.detail for r in result.rejected if r.reason == "unknown_function")
    assert "missiles" not in result.outcomes


def test_cli_writes_the_whole_output_with_the_rejections(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.jsonl").write_text("old\n")

    result = runner.invoke(app, ["ufo", "import", str(_bad_folder(tmp_path)), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "outcomes.jsonl",
        "pairs.jsonl",
        "rejected.jsonl",
        "tasks.jsonl",
    ]
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == 4
    assert "4 rejected" in result.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_a_failed_write_leaves_the_previous_output_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "good.json", _record("good"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "pairs.jsonl").write_text("previous\n")
    result = import_dir(src, builtin_templates=())
    calls = []

    def failing_write_jsonl(path, records):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        path.write_text("new\n")

    monkeypatch.setattr("lamops.data.ufo_records.write_jsonl", failing_write_jsonl)
    with pytest.raises(OSError, match="disk full"):
        result.write(out)

    assert sorted(p.name for p in out.iterdir()) == ["pairs.jsonl"]
    assert (out / "pairs.jsonl").read_text() == "previous\n"


def test_out_naming_an_existing_file_is_one_line_and_exit_2(tmp_path: Path):
    out = tmp_path / "out.jsonl"
    out.write_text("keep me\n")

    result = runner.invoke(app, ["ufo", "import", str(GOOD), "--out", str(out)])

    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.strip().count("\n") == 0 and "is a file" in result.output
    assert out.read_text() == "keep me\n"


def test_a_fifo_and_a_dangling_link_are_rejected_unopened(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "good.json", _record("good"))
    os.mkfifo(src / "pipe.json")  # opening it for reading would block until a writer came
    (src / "gone.json").symlink_to(tmp_path / "nowhere.json")

    result = runner.invoke(app, ["ufo", "import", str(src), "--out", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    assert "3 JSON files, 1 imported, 2 rejected" in result.output
    rejected = (tmp_path / "out/rejected.jsonl").read_text()
    assert "not_a_file" in rejected and "a FIFO" in rejected and "dangling_link" in rejected


def test_a_fifo_given_as_the_source_is_rejected_not_read(tmp_path: Path):
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)

    result = import_dir(pipe, builtin_templates=())

    assert result.pairs == [] and [r.reason for r in result.rejected] == ["not_a_file"]
