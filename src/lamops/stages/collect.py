"""Collect task-plan pairs from raw sources: parse, clean, structure, filter, deduplicate, quarantine.

Counts (stats.json): per source file (`by_file`) and in all, the records `read` (entries: a section, a line,
a query; readable or not), `kept` (a pair in the output) and `quarantined` (no pair, a reason in
quarantine.jsonl); kept + quarantined == read is checked, or the stage fails (RecordsLost)."""

from __future__ import annotations

import time
from collections import Counter
from functools import partial

from lamops.config import Config
from lamops.io import replace_dir, write_jsonl
from lamops.progress import progress
from lamops.stages.base import (
    PAIRS_FILE,
    QUARANTINE_FILE,
    STATS_FILE,
    StageInputError,
    StageResult,
    check_total,
    checked_counts,
    gate,
    write_drops_and_counts,
)
from lamops.tracking import stage_run


def source_root(cfg: Config) -> str:
    root = cfg.collect.sources
    return root if root.startswith("s3://") else str(cfg.path(root))


def by_file(
    unread: dict[str, int], entry_file: dict[str, str], kept: set[str], quarantined: set[str]
) -> dict[str, dict[str, int]]:
    """Per source file: records `read`, `kept` (a pair in the output) and `quarantined` (no pair, at least one
    quarantine record), from the records rejected while parsing (`unread`, by file), each entry's file (by
    origin) and the origins kept and quarantined. An entry in neither set is counted in `read` only, so any
    record lost on the way breaks kept + quarantined == read."""
    out = {name: {"read": n, "kept": 0, "quarantined": n} for name, n in unread.items()}
    for origin, name in entry_file.items():
        out[name]["read"] += 1
        if origin in kept:
            out[name]["kept"] += 1
        elif origin in quarantined:
            out[name]["quarantined"] += 1
    return dict(sorted(out.items()))


def read_in_driver(cfg: Config, root: str, files: list[tuple[str, str]], fn) -> tuple:
    """The driver reads and parses every source file, then maps `fn` over the entries (map_batches): the
    embedded default, where the files are local and small. Returns (results, rejected, unread, entry_file,
    raw_entries): `fn`'s outputs, the records rejected while parsing, their count by file, each entry's
    file by its origin, and the records the files held, readable or not."""
    from lamops.compute import map_batches
    from lamops.data.source_files import iter_entries

    c = cfg.collect
    entries, rejected = [], []
    unread: dict[str, int] = {}  # records rejected while parsing, by file
    entry_file: dict[str, str] = {}  # entry origin -> its file
    for name, good, bad in progress(
        iter_entries(files, c.s3_endpoint_url, root), "collect: read", len(files)
    ):
        entries.extend(good)
        rejected.extend(bad)
        unread[name] = len(bad)
        entry_file.update((e.origin, name) for e in good)
    raw_entries = len(entries) + len(rejected)
    results = map_batches(fn, entries, workers=c.workers, ray_cfg=cfg.ray, batch_size=512)
    return results, rejected, unread, entry_file, raw_entries


def read_in_workers(cfg: Config, root: str, files: list[tuple[str, str]], fn) -> tuple:
    """`read_in_driver`'s outputs, but Ray Data's reader opens the files in the workers, which parse them
    and map `fn` over their entries (map_files): on a cluster or for s3:// sources, so that the driver
    never holds the corpus. A file that cannot be read fails the stage, naming it (the driver path
    quarantines it); a folder that cannot be listed is quarantined either way."""
    from lamops.compute import map_files
    from lamops.data.source_files import FOLDER, folder_reject, parse_source, source_name

    c = cfg.collect
    readable = {loc: (kind, source_name(kind, loc, root)) for kind, loc in files if kind != FOLDER}
    outputs = map_files(
        fn,
        list(readable),
        parse=partial(parse_source, files=readable),
        workers=c.workers,
        ray_cfg=cfg.ray,
        batch_size=512,
        s3_endpoint_url=c.s3_endpoint_url,
    )
    by_location = {out.uri: out for out in outputs}
    results, rejected, unread, entry_file, raw_entries = [], [], {}, {}, 0
    for kind, location in files:  # in the driver path's order, so that outputs match it record for record
        name = source_name(kind, location, root)
        if kind == FOLDER:
            rejected.append(folder_reject(location, name))
            unread[name] = 1
            raw_entries += 1
            continue
        out = by_location[location]
        rejected.extend(out.rejected)
        unread[name] = len(out.rejected)
        entry_file.update((r["origin"], name) for r in out.results)  # every entry has >= 1 output
        raw_entries += out.records + len(out.rejected)
        results.extend(out.results)
    return results, rejected, unread, entry_file, raw_entries


def run(cfg: Config) -> StageResult:
    from lamops.compute import reads_where_data_lies
    from lamops.data.collect import Limits, deduplicate, process_entries
    from lamops.data.source_files import list_source_files
    from lamops.records import Rejected
    from lamops.roles import make_roles

    start = time.perf_counter()
    c = cfg.collect
    out_dir = cfg.path(c.out_dir)
    with stage_run(cfg, "collect") as tracked:
        root = source_root(cfg)
        files = list_source_files(root, c.s3_endpoint_url)
        limits = Limits(c.min_task_chars, c.max_task_chars, c.min_steps, c.max_steps, c.max_plan_chars)
        fn = partial(process_entries, structurer=make_roles(cfg.llm).structure, limits=limits)
        read = read_in_workers if c.workers and reads_where_data_lies(cfg.ray, [root]) else read_in_driver
        results, rejected, unread, entry_file, raw_entries = read(cfg, root, files, fn)
        candidates = [r for r in results if "pair" in r]
        rejected.extend(r["rejected"] for r in results if "rejected" in r)
        quarantined = {r["origin"] for r in results if "rejected" in r}
        keep, dropped = deduplicate(candidates, c.near_duplicate_threshold)
        for i, (reason, j) in sorted(dropped.items()):
            pair, first = candidates[i]["pair"], candidates[j]["pair"]
            quarantined.add(pair.origin)
            rejected.append(
                Rejected(
                    stage="collect",
                    reason=reason,
                    detail=f"duplicate of {first.task_id} ({first.origin})",
                    origin=candidates[i]["where"],
                    record=pair.task,
                )
            )
        pairs, seen = [], set()
        for i in keep:
            pair = candidates[i]["pair"]
            if pair.task_id in seen:  # a hash collision of two origins: keep both, distinctly named
                pair = pair.model_copy(update={"task_id": f"{pair.task_id}-{i}"})
            seen.add(pair.task_id)
            pairs.append(pair)
        dropped_by = Counter(r.reason for r in rejected)
        counts = checked_counts(
            "collect", by_file(unread, entry_file, {p.origin for p in pairs}, quarantined)
        )
        check_total("collect", "records read, summed by file vs in all", raw_entries, counts["read"])
        check_total("collect", "pairs kept, summed by file vs written", len(pairs), counts["kept"])
        stats = {
            "files": len(files),
            "raw_entries": raw_entries,
            "read": counts["read"],
            "kept": len(pairs),
            "quarantined": counts["quarantined"],
            "dropped": dict(sorted(dropped_by.items())),
            "dropped_total": len(rejected),
            "by_source": dict(sorted(Counter(p.source for p in pairs).items())),
        }
        tracked.log_metrics(stats)
        stats["by_file"] = counts["by_file"]
        if not pairs:  # the reasons first, where the user can read them; the gate would only say "0 rows"
            with replace_dir(out_dir) as staging:
                write_drops_and_counts(staging, rejected, stats)
            tracked.log_artifact(out_dir / QUARANTINE_FILE, "quarantine")
            if not raw_entries:
                raise StageInputError(
                    f"collect: no record in {root}: {len(files)} source files (docs/**/*.md, "
                    "howto/**/*.jsonl, queries/**/*.txt) and nothing in them"
                )
            raise StageInputError(
                f"collect: no usable record: all {raw_entries} records of the {len(files)} source files "
                f"under {root} were rejected; the reasons are in {out_dir / QUARANTINE_FILE}, the counts "
                f"by file in {out_dir / STATS_FILE}"
            )
        gate(tracked, "task_plans", pairs)
        with replace_dir(out_dir) as staging:
            write_jsonl(staging / PAIRS_FILE, pairs)
            write_drops_and_counts(staging, rejected, stats)
        tracked.log_dataset(out_dir / PAIRS_FILE, pairs, "task_plans_collected", "output")
        tracked.log_artifact(out_dir / QUARANTINE_FILE, "quarantine")
    return StageResult(
        stage="collect",
        outputs=[str(out_dir)],
        metrics={"kept": len(pairs), "dropped": len(rejected), "files": len(files)},
        seconds=time.perf_counter() - start,
        message=f"{len(pairs)} task-plan pairs kept, {len(rejected)} dropped "
        f"({', '.join(f'{k} {v}' for k, v in dropped_by.most_common())}); quarantine: "
        f"{out_dir / QUARANTINE_FILE}",
    )
