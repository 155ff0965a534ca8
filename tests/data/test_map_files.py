"""The file path of lamops.compute (`map_files`): Ray Data's reader opens the input files in the workers,
which parse and map them. It must give what the driver-side list path gives, in the same order, and a line it
cannot read must still be named by file and line."""

import json
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import collect_cfg, collect_process_fn, comparable

from lamops.compute import map_batches, map_files, reads_where_data_lies
from lamops.io import parse_jsonl, read_jsonl
from lamops.records import Rejected

GOOD_HOWTO = json.dumps(
    {"id": "a", "title": "How to Bold Text in Word", "steps": ["Select it.", "Click Bold."]}
)


def write_records(folder: Path, files: int, per_file: int) -> list[str]:
    paths = []
    for f in range(files):
        rows = [
            Rejected(stage="t", reason="r", detail=f"f{f}-r{i}", origin=f"o{f}.{i}").model_dump_json()
            for i in range(per_file)
        ]
        path = folder / f"part-{f}.jsonl"
        path.write_text("\n".join(rows) + "\n")
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("workers", [0, 2])
def test_map_files_gives_the_list_paths_results_in_input_order(tmp_path, ray_local, workers):
    paths = write_records(tmp_path, files=20, per_file=3)  # 16 read tasks on 2 workers: some take 2 files
    # The list path: the driver reads every file, then maps its records. `list` as the worker function
    # (Ray's workers can import it, not this test module): results are the records parsed in the worker.
    records = [r for p in paths for r in read_jsonl(Path(p), Rejected, "t")[0]]
    expected = map_batches(list, records, workers=2, batch_size=3)
    assert expected == records

    parse = partial(parse_jsonl, model=Rejected, stage="t")
    outputs = map_files(list, list(reversed(paths)), parse=parse, workers=workers, batch_size=3)
    assert [o.uri for o in outputs] == list(reversed(paths))  # one output per file, in the order asked
    assert [o.records for o in outputs] == [3] * 20
    by_uri = {o.uri: o.results for o in outputs}
    assert [x for p in paths for x in by_uri[p]] == expected


def test_a_malformed_line_read_in_a_worker_is_rejected_naming_file_and_line(tmp_path, ray_local):
    (path,) = write_records(tmp_path, files=1, per_file=4)
    lines = Path(path).read_text().splitlines()
    lines[2] = '{"stage": "t", "reason": 3'  # line 3: not JSON
    lines.insert(3, '{"stage": "t"}')  # line 4: JSON, not a record
    Path(path).write_text("\n".join(lines) + "\n")

    parse = partial(parse_jsonl, model=Rejected, stage="execute")
    (out,) = map_files(list, [path], parse=parse, workers=2)
    assert out.records == 3 and len(out.results) == 3
    assert [r.origin for r in out.rejected] == [f"{path}:3", f"{path}:4"]
    assert out.rejected == read_jsonl(Path(path), Rejected, "execute")[1]  # as the driver's read says it
    assert "reason" in out.rejected[1].detail and out.rejected[0].stage == "execute"


def test_a_file_name_that_is_not_utf8_is_read_too(tmp_path, ray_local):
    """pyarrow cannot open such a name: the driver reads that file, the others still go to the workers."""
    (path,) = write_records(tmp_path, files=1, per_file=3)
    odd = str(tmp_path / b"caf\xe9.jsonl".decode("utf-8", "surrogateescape"))
    Path(odd).write_bytes(Path(path).read_bytes())
    parse = partial(parse_jsonl, model=Rejected, stage="t")
    first, second = map_files(list, [odd, path], parse=parse, workers=2)
    assert (first.uri, second.uri) == (odd, path)
    assert first.results == second.results and len(first.results) == 3


def test_a_missing_input_file_fails_naming_it(tmp_path, ray_local):
    paths = write_records(tmp_path, files=1, per_file=2)
    missing = str(tmp_path / "gone.jsonl")
    with pytest.raises(FileNotFoundError, match="gone.jsonl"):
        map_files(list, [*paths, missing], parse=partial(parse_jsonl, model=Rejected, stage="t"), workers=2)


def test_the_file_path_is_taken_on_a_cluster_or_for_s3_inputs(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    local = SimpleNamespace(address=None, num_cpus=2)
    assert not reads_where_data_lies(local, ["data/raw"])
    assert reads_where_data_lies(local, ["s3://raw/team"])
    assert reads_where_data_lies(SimpleNamespace(address="ray://head:10001", num_cpus=None), ["data/raw"])
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert reads_where_data_lies(local, ["data/raw"])
    monkeypatch.setenv("RAY_ADDRESS", "local")
    assert not reads_where_data_lies(local, ["data/raw"])


# ---- collect, the stage that takes the file path ----------------------------------------------------------
def write_sources(root: Path) -> None:
    page = b"# Page\n- stray\n## Make text bold\n1. Select the text.\n2. Click **Bold**.\n##Bad\n1. x\n"
    files = {
        "docs/p.md": page,
        "docs/q.md": b"## Make text italic\n1. Select the text.\n2. Click **Italic**.\n",
        "howto/a.jsonl": "\n".join([GOOD_HOWTO, "[" * 500, '{"title": 3}']).encode(),
        "queries/q.txt": b"word how to make text italic\ninsert table 3x4 word\n\xff\n",
        "queries/wide.txt": "word how to bold\n".encode("utf-16"),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_collect_reads_sources_in_the_workers_as_the_driver_does(tmp_path, ray_local):
    from lamops.data.source_files import list_source_files
    from lamops.stages.collect import read_in_driver, read_in_workers

    write_sources(tmp_path)
    root = str(tmp_path)
    files = list_source_files(root)
    in_driver = comparable(read_in_driver(collect_cfg(), root, files, collect_process_fn()))
    in_workers = comparable(read_in_workers(collect_cfg(), root, files, collect_process_fn()))
    assert in_workers == in_driver
    _, rejected, unread, _, raw_entries = in_workers
    assert unread == {
        "docs/p.md": 2,
        "docs/q.md": 0,
        "howto/a.jsonl": 2,
        "queries/q.txt": 1,
        "queries/wide.txt": 1,
    }
    assert [json.loads(r)["origin"] for r in rejected] == [
        "docs/p.md:1",
        "docs/p.md:6",
        "howto/a.jsonl:2",  # lines the workers could not read, named by file and line
        "howto/a.jsonl:3",
        "queries/q.txt:3",
        "queries/wide.txt",
    ]
    assert raw_entries == 11


def test_the_collect_stage_on_a_cluster_writes_what_the_driver_path_writes(tmp_path, ray_local, monkeypatch):
    """`lamops collect` with $RAY_ADDRESS set takes the worker path; its outputs are byte for byte those of
    the embedded run (in-process here: map_batches gives the same on any number of workers)."""
    from test_collect_inputs import collect, project

    import lamops.compute

    read_by_workers = []

    def spy(fn, uris, **kwargs):
        read_by_workers.extend(uris)
        return map_files(fn, uris, **kwargs)

    monkeypatch.setattr(lamops.compute, "map_files", spy)
    outputs = {}
    address = ray_local.get_runtime_context().gcs_address
    for run, workers in (("driver", 0), ("workers", 2)):
        (tmp_path / run).mkdir()
        root = project(tmp_path / run, {})
        write_sources(root / "src")
        if workers:
            monkeypatch.setenv("RAY_ADDRESS", address)
        else:
            monkeypatch.delenv("RAY_ADDRESS", raising=False)
        result = collect(root, "--set", f"collect.workers={workers}")
        assert result.exit_code == 0, result.output
        out = root / "data/task_plans/collected"
        outputs[run] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert len(read_by_workers) == 5 and all(u.startswith(str(tmp_path / "workers")) for u in read_by_workers)
    assert set(outputs["workers"]) == {"pairs.jsonl", "quarantine.jsonl", "stats.json"}
    assert outputs["workers"] == outputs["driver"]
