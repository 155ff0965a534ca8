"""UFO dataflow interchange: result records -> lamops records, malformed files, summary, task export."""

import json
import shutil
from pathlib import Path

import pytest

from lamops.data.ufo import UnusableIdError, import_dir, safe_id
from lamops.data.ufo_export import export_pairs, read_pairs_jsonl
from lamops.data.ufo_records import ImportResult
from lamops.records import (
    InstantiatedTask,
    PlanStep,
    Rejected,
    ResultRecord,
    TaskPlanPair,
    Trajectory,
    TrajectoryStep,
    Verdict,
)

FIXTURES = Path(__file__).parent / "ufo_fixtures" / "results"
NO_TEMPLATES: tuple[str, ...] = ()  # the fixture records name UFO's documents, none of lamops's


def _by_id(records):
    return {r.task_id: r for r in records}


def _copy(name: str, dest: Path) -> Path:
    src = next(FIXTURES.rglob(name))
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def test_fixture_set_becomes_pairs_tasks_and_outcomes():
    result = import_dir(FIXTURES, builtin_templates=NO_TEMPLATES)

    assert result.rejected == [] and result.mismatches == []
    pairs, tasks = _by_id(result.pairs), _by_id(result.tasks)
    # Every record is at least a task-plan pair, whatever UFO did with it.
    assert set(pairs) == {"5", "102", "108", "17", "23", "31", "44", "word_delete_7"}
    assert pairs["5"].task == "Turning lines of text into a bulleted list in Word"
    assert pairs["5"].plan[1].startswith("2. Click the Bullets button")
    assert pairs["5"].source == "ufo" and pairs["5"].origin.endswith("execution_pass/bulleted.json")

    # Instantiated: not when prefill failed (23), not when UFO's filter rejected the request (44).
    assert set(tasks) == {"5", "102", "108", "17", "31", "word_delete_7"}
    bulleted = tasks["5"]
    assert bulleted.family is None and bulleted.source_id == "5"
    assert bulleted.template == "dataflow\\results\\saved_document\\bulleted.docx"
    assert bulleted.request == "Turn the line of text 'text to edit' into a bulleted list in Word."
    assert bulleted.plan == pairs["5"].plan
    assert bulleted.action_plan[1] == PlanStep(
        step=2,
        subtask="Click the Bullets button in the Paragraph group on the Home tab",
        control_text="Bullets",
        function="click_input",
        args={"button": "left", "double": False},
    )
    # Steps as the prefill LLM writes them: no ControlText, "1" for 1, no Args.
    assert tasks["102"].action_plan[0].control_text == ""
    assert [s.step for s in tasks["31"].action_plan] == [1, 2] and tasks["31"].action_plan[1].args == {}

    # Outcomes: the judge's verdict, or the execution error with UFO's per-step Success.
    outcomes = result.outcomes
    assert set(outcomes) == {"5", "102", "108", "17", "31"}
    assert outcomes["5"].verdict.complete == "yes" and outcomes["5"].success
    assert outcomes["17"].verdict.sub_scores == {"text box selection": "yes", "rotation": "no"}
    assert outcomes["31"].verdict.complete == "unsure" and outcomes["31"].filed_under == "execution_unsure"
    failed = outcomes["108"]
    assert failed.verdict is None and not failed.success
    assert failed.step_success == [True, False, None, None]
    assert failed.error.startswith("RuntimeError: Execution failed. Step 2 execution failed.")
    assert failed.plan == tasks["108"].action_plan

    rows = {f.file: f for f in result.files}
    assert rows["instantiation/instantiation_fail/chart.json"].task == "filtered"
    assert any("word/delete 7" in n for n in rows["instantiation/instantiation_pass/delete.json"].notes)


def test_written_jsonl_reads_back_equal(tmp_path):
    result = import_dir(FIXTURES, builtin_templates=NO_TEMPLATES)
    files = result.write(tmp_path / "out")

    assert {p.name for p in files.values()} == {
        "pairs.jsonl",
        "tasks.jsonl",
        "outcomes.jsonl",
        "rejected.jsonl",
    }
    assert list(read_pairs_jsonl(files["pairs"])) == result.pairs
    tasks = [InstantiatedTask.model_validate_json(line) for line in files["tasks"].read_text().splitlines()]
    assert tasks == result.tasks
    outcomes = [json.loads(line) for line in files["outcomes"].read_text().splitlines()]
    assert [o["task_id"] for o in outcomes] == list(result.outcomes)
    assert files["rejected"].read_text() == ""
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files left
    # The same input gives the same records.
    assert import_dir(FIXTURES, builtin_templates=NO_TEMPLATES).pairs == result.pairs


def test_lamops_written_record_on_a_builtin_template_is_re_executable(tmp_path):
    task = InstantiatedTask(
        task_id="bold_3",
        family="bold_phrase",
        template="plain_text",
        request="Make 'quarterly results' bold.",
        plan=["Select the phrase.", "Click Bold."],
        action_plan=[
            PlanStep(
                step=1,
                subtask="Select the phrase",
                function="select_text",
                args={"text": "quarterly results"},
            ),
            PlanStep(step=2, subtask="Click Bold", control_text="Bold", function="click_input"),
        ],
    )
    steps = [
        TrajectoryStep(step=1, prompt="...", function="select_text", args={"text": "quarterly results"}),
        TrajectoryStep(step=2, prompt="...", control_label="7", control_name="Bold", function="click_input"),
    ]
    traj = Trajectory(task=task, agent="expert", steps=steps, verdict=Verdict(complete="yes", reason="bold"))
    record = ResultRecord.from_trajectory(
        traj, original_task="Bold a phrase in Word", original_steps=task.plan
    )
    (tmp_path / "execution_pass").mkdir()
    (tmp_path / "execution_pass" / "bold_3.json").write_text(record.model_dump_json(indent=4))

    result = import_dir(tmp_path, builtin_templates=["plain_text", "lists"])

    [imported] = result.tasks
    assert imported.template == "plain_text" and imported.request == task.request
    assert imported.action_plan == task.action_plan
    assert result.outcomes["bold_3"].step_success == [True, True]
    assert result.files[0].task == "built-in"
    assert "1 on a built-in template (plain_text)" in " ".join(result.summary().split())


def test_malformed_files_are_rejected_with_a_reason_and_good_files_still_import(tmp_path):
    good = _copy("bulleted.json", tmp_path / "execution_pass" / "bulleted.json")
    _copy("watermark.json", tmp_path / "execution_fail" / "watermark.json")
    base = json.loads(good.read_text())
    bad = tmp_path / "execution_fail"

    (bad / "broken.json").write_text('{"unique_id": "9",\n  "app": "word",\n  "original": {')
    (bad / "latin1.json").write_bytes(good.read_bytes().replace(b"Turning lines", b"Turning l\xe9nes"))
    (bad / "no_execution.json").write_text(
        json.dumps({k: v for k, v in base.items() if k != "execution_result"})
    )
    plan_as_text = json.loads(good.read_text())
    plan_as_text["instantiation_result"]["prefill"]["result"]["instantiated_plan"] = "step 1\nstep 2"
    (bad / "plan_as_text.json").write_text(json.dumps(plan_as_text))
    (bad / "passwd.json").write_text(json.dumps({**base, "unique_id": "../../etc/passwd"}))
    huge = json.loads(good.read_text())
    huge["original"]["original_task"] = "x" * (5 * 2**20)
    (bad / "huge.json").write_text(json.dumps(huge))
    (bad / "empty.json").write_bytes(b"")
    verdict_prose = json.loads(good.read_text())
    verdict_prose["execution_result"]["result"]["complete"] = "mostly"
    (bad / "verdict.json").write_text(json.dumps(verdict_prose))
    (tmp_path / "saved_document").mkdir()
    (tmp_path / "saved_document" / "bulleted.docx").write_bytes(b"PK\x03\x04")  # UFO's documents: skipped

    result = import_dir(tmp_path, builtin_templates=NO_TEMPLATES)

    assert sorted(p.task_id for p in result.pairs) == ["108", "5"]
    assert set(result.outcomes) == {"108", "5"}
    assert result.skipped == 1
    reasons = {Path(r.origin).name: (r.reason, r.detail) for r in result.rejected}
    assert all(isinstance(r, Rejected) and r.stage == "ufo_import" for r in result.rejected)
    expected = {
        "broken.json": ("bad_json", "line 3 column"),
        "latin1.json": ("not_utf8", "byte 0xe9 at offset"),
        "no_execution.json": ("missing_field", "missing field execution_result"),
        "plan_as_text.json": ("wrong_type", "instantiation_result.prefill.result.instantiated_plan"),
        "passwd.json": ("bad_unique_id", "'../../etc/passwd' looks like a path that leaves its folder"),
        "huge.json": ("too_large", "original.original_task is 5,242,880 characters"),
        "empty.json": ("empty_file", "file is empty"),
        "verdict.json": ("wrong_value", "execution_result.result.complete is 'mostly'"),
    }
    assert set(reasons) == set(expected)
    for name, (reason, fragment) in expected.items():
        assert reasons[name][0] == reason, (name, reasons[name])
        assert fragment in reasons[name][1], (name, reasons[name])
    assert "got a string" in reasons["plan_as_text.json"][1]
    assert all(len(r.record) <= 200 for r in result.rejected)

    written = result.write(tmp_path / "out")
    lines = written["rejected"].read_text().splitlines()
    assert len(lines) == len(expected)
    assert "Rejected files:" in result.summary() and "rejected.jsonl" in result.summary()


def test_folder_is_a_hint_and_the_record_is_the_truth(tmp_path):
    _copy("bulleted.json", tmp_path / "dataflow" / "execution_fail" / "bulleted.json")

    result = import_dir(tmp_path, builtin_templates=NO_TEMPLATES)

    assert result.outcomes["5"].verdict.complete == "yes"
    assert result.outcomes["5"].filed_under == "execution_fail"
    assert result.mismatches == [
        "dataflow/execution_fail/bulleted.json: filed under execution_fail but the record complete is 'yes'"
    ]
    assert "Folder and record disagree" in result.summary()


def test_colliding_ids_get_deterministic_distinct_suffixes(tmp_path):
    # The same task run twice (two modes), and two unique_ids that sanitize to the same id.
    _copy("bulleted.json", tmp_path / "dataflow" / "execution_pass" / "bulleted.json")
    _copy("bulleted.json", tmp_path / "execution" / "execution_pass" / "bulleted.json")
    rec = json.loads(next(FIXTURES.rglob("rotate.json")).read_text())
    for name, uid in (("a.json", "word 17"), ("b.json", "word/17")):
        (tmp_path / "other").mkdir(exist_ok=True)
        (tmp_path / "other" / name).write_text(json.dumps({**rec, "unique_id": uid}))

    ids = [p.task_id for p in import_dir(tmp_path, builtin_templates=NO_TEMPLATES).pairs]

    assert len(set(ids)) == 4
    assert sorted(i.split("-")[0] for i in ids) == ["5", "5", "word_17", "word_17"]
    assert ids == [p.task_id for p in import_dir(tmp_path, builtin_templates=NO_TEMPLATES).pairs]
    # A file's id depends on its own path, not on which other files are there.
    (tmp_path / "other" / "a.json").unlink()
    again = {p.origin: p.task_id for p in import_dir(tmp_path, builtin_templates=NO_TEMPLATES).pairs}
    assert again[str(tmp_path / "other" / "b.json")] == "word_17"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("108", "108"),
        (7, "7"),
        ("word.1", "word.1"),
        ("word/delete 7", "word_delete_7"),
        ("café #2", "caf_2"),
    ],
)
def test_safe_id_keeps_safe_ids_and_sanitizes_odd_ones(raw, expected):
    assert safe_id(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "../../etc/passwd", "/etc/passwd", "C:\\x", "a\x00b", "###", None, True]
)
def test_safe_id_refuses_unusable_ids(raw):
    with pytest.raises(UnusableIdError):
        safe_id(raw)


def test_long_ids_are_cut_with_a_hash():
    long_id = "x" * 200 + "!"
    out = safe_id(long_id)
    assert len(out) == 128 and out == safe_id(long_id) and out != safe_id("x" * 201 + "!")


def test_summary_says_which_phases_can_use_what():
    text = " ".join(import_dir(FIXTURES, builtin_templates=NO_TEMPLATES).summary().split())

    assert "8 task-plan pairs -> LAM1 (plan_pretrain)" in text
    assert "6 instantiated tasks -> 0 on a built-in template" in text
    assert "not executable here" in text
    assert "2 yes, 1 no, 1 unsure, 1 stopped by an execution error" in text
    assert "NOT per-step observations" in text
    assert "cannot become LAM2-LAM4 step samples" in text
    assert "dataflow/execution_pass/bulleted.json" in text


def _pairs() -> list[TaskPlanPair]:
    return [
        TaskPlanPair(
            task_id="word_032",
            task="Add a border to a page in Word",
            plan=["1. Go to Design."],
            source="doc",
            origin="docs/borders.md#1",
        ),
        TaskPlanPair(
            task_id="word.1",
            task="Insert “smart quotes” — café",
            plan=["Type “x”.", "Press Enter."],
            source="evolved",
            origin="word_032",
            parents=["word_032"],
        ),
        TaskPlanPair(
            task_id="word_1", task="Clash with word.1 once dots go", plan=[], source="query", origin="q:1"
        ),
        TaskPlanPair(
            task_id="CON", task="A Windows device name", plan=["step"], source="howto", origin="h:1"
        ),
    ]


def test_export_writes_ufo_task_files_that_read_back_equal(tmp_path):
    pairs = _pairs()
    out = tmp_path / "tasks"

    files = export_pairs(pairs, out, app="word")

    assert sorted(files) == sorted(out.iterdir())  # one file per task, nothing else in the folder
    assert len({f.name.lower() for f in files}) == len(pairs)
    assert all("." not in f.stem for f in files)  # UFO cuts file names at the first dot
    assert all(f.stem.upper() != "CON" for f in files)
    for path, pair in zip(files, pairs, strict=True):
        raw = path.read_bytes()
        assert raw.isascii()  # UFO opens task files with the Windows locale's encoding
        assert json.loads(raw) == {
            "app": "word",
            "unique_id": pair.task_id,
            "task": pair.task,
            "refined_steps": pair.plan,
        }
    back = _by_id(import_dir(out, builtin_templates=NO_TEMPLATES).pairs)
    assert {(p.task_id, p.task, tuple(p.plan)) for p in back.values()} == {
        (p.task_id, p.task, tuple(p.plan)) for p in pairs
    }


def test_export_shards_and_refuses_to_mix_with_old_tasks(tmp_path):
    out = tmp_path / "tasks"
    files = export_pairs(_pairs()[:3], out, shard_size=2)
    assert [f.relative_to(out).parent.name for f in files] == ["part-0000", "part-0000", "part-0001"]

    with pytest.raises(FileExistsError, match="not empty"):
        export_pairs(_pairs()[:1], out)
    files = export_pairs(_pairs()[:1], out, overwrite=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["word_032.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the staging folder is gone

    with pytest.raises(ValueError, match="duplicate task_id"):
        export_pairs(_pairs()[:1] * 2, tmp_path / "dupes")
    with pytest.raises(ValueError, match="not one UFO's dataflow knows"):
        export_pairs(_pairs(), tmp_path / "x", app="notepad")


def test_read_pairs_jsonl_names_the_bad_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    good = _pairs()[0].model_dump_json()
    path.write_text(f'{good}\n\n{{"task_id": "x"}}\n')

    reader = read_pairs_jsonl(path)
    assert next(reader) == _pairs()[0]
    with pytest.raises(ValueError, match=r"pairs.jsonl:3: not a task-plan pair"):
        next(reader)


def test_empty_import_still_summarizes(tmp_path):
    result = import_dir(tmp_path, builtin_templates=NO_TEMPLATES)
    assert isinstance(result, ImportResult) and result.pairs == []
    assert "0 JSON files" in result.summary()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_dir(tmp_path / "missing")
