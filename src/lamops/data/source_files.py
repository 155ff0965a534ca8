"""`collect`'s first step: list, read and parse the raw source files of docs/data-sources.md.

Every record a file holds comes out either as a `RawEntry` or as a `Rejected` naming its file and line: a
line that does not decode (whatever the exception), a Markdown section collect cannot read as a task, a file
that is not UTF-8 text or cannot be read at all (one record for the whole file), a folder of sources that
cannot be listed (one record for the folder: its files are never seen). Nothing here raises on the
contents of a file, and every pattern runs in time linear in its input: a page of hostile Markdown costs what
its length costs."""

from __future__ import annotations

import codecs
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lamops.config import ConfigError
from lamops.io import iter_lines, truncate
from lamops.records import RawEntry, Rejected

STAGE = "collect"
KIND_FOLDERS = {"docs": ("doc", ".md"), "howto": ("howto", ".jsonl"), "queries": ("query", ".txt")}
MAX_FILE_BYTES = 200_000_000
FOLDER = "folder"  # the kind list_source_files gives a folder it cannot list: one quarantine record
_WIDE_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def reject(reason: str, detail: str, origin: str, record: str = "") -> Rejected:
    """A quarantine record of the collect stage (the record itself truncated)."""
    return Rejected(stage=STAGE, reason=reason, detail=detail, origin=origin, record=truncate(record))


# ---- listing and reading -------------------------------------------------------------------------------
def list_source_files(root: str, s3_endpoint_url: str | None = None) -> list[tuple[str, str]]:
    """(kind, location) of every source file under a folder or s3://bucket/prefix, in a stable order.

    A name of the three formats that is not a folder is listed even when it is not a regular file (a FIFO, a
    dangling link, a link loop): reading it fails, and the failure is its quarantine record."""
    if root.startswith("s3://"):
        bucket, _, prefix = root[5:].partition("/")
        client = _s3(s3_endpoint_url)
        out = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                kind = _kind_of(obj["Key"][len(prefix) :].lstrip("/"))
                if kind:
                    out.append((kind, f"s3://{bucket}/{obj['Key']}"))
        return sorted(out, key=lambda x: x[1])
    base = Path(root)
    if not base.is_dir():
        what = "is a file, not a folder" if base.exists() else "no such folder"
        raise ConfigError(f"collect.sources: {what}: {base} (expected a folder of docs/, howto/, queries/)")
    out = []
    for path, unlisted in _walk(base):
        relative = path.relative_to(base).as_posix()
        if unlisted:  # a folder that may hold source files but cannot be listed: quarantined, not skipped
            if path == base or relative.partition("/")[0] in KIND_FOLDERS:
                out.append((FOLDER, str(path)))
            continue
        kind = _kind_of(relative)
        if kind:
            out.append((kind, str(path)))
    return sorted(out, key=lambda x: x[1])


def _walk(base: Path) -> Iterator[tuple[Path, bool]]:
    """(path, False) for every entry under `base` that is not a folder, (folder, True) for every folder that
    cannot be listed (permission denied, an I/O error), where Path.rglob would skip it silently. Folders are
    entered, links to folders neither entered nor listed (as rglob)."""
    stack = [base]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as found:
                entries = list(found)
        except OSError:
            yield folder, True
            continue
        for entry in entries:
            path = folder / entry.name
            try:
                real_folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                real_folder = False
            if real_folder:
                stack.append(path)
            elif not path.is_dir():
                yield path, False


def _listing_error(folder: str) -> str:
    """Why `folder` cannot be listed, as one line."""
    try:
        with os.scandir(folder):
            return "it could not be listed a moment ago"
    except OSError as err:
        return f"{type(err).__name__}: {err.strerror or err}"


def _kind_of(relative: str) -> str | None:
    top, _, rest = relative.partition("/")
    if top in KIND_FOLDERS and rest and not Path(rest).name.startswith("."):
        kind, suffix = KIND_FOLDERS[top]
        if rest.endswith(suffix):
            return kind
    return None


def _s3(endpoint_url: str | None):
    import boto3
    from botocore.config import Config as BotoConfig

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        config=BotoConfig(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}),
    )


def read_source(location: str, s3_endpoint_url: str | None = None) -> bytes:
    """The bytes of one source file; an OSError for a local one that is not a regular file (a FIFO would
    block the read forever)."""
    if location.startswith("s3://"):
        bucket, _, key = location[5:].partition("/")
        return _s3(s3_endpoint_url).get_object(Bucket=bucket, Key=key)["Body"].read()
    mode = os.stat(location).st_mode
    if not stat.S_ISREG(mode):
        raise OSError(f"not a regular file (mode {stat.filemode(mode)})")
    return Path(location).read_bytes()


def printable_name(name: str) -> str:
    """`name` as it can be written to UTF-8 outputs: bytes of a file name that are not UTF-8 (which Python
    holds as lone surrogates) become `\\xNN`; any other name is unchanged."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def iter_entries(
    files: list[tuple[str, str]], s3_endpoint_url: str | None, root: str
) -> Iterator[tuple[str, list[RawEntry], list[Rejected]]]:
    """(name, entries, rejects) of each file; names and origins are relative to `root`, so outputs do not
    depend on where the project lives. Each record of a file is in exactly one of its two lists."""
    for kind, location in files:
        name = source_name(kind, location, root)
        if kind == FOLDER:
            yield name, [], [folder_reject(location, name)]
            continue
        try:
            data = read_source(location, s3_endpoint_url)
        except Exception as err:  # a file that cannot be read is quarantined, the others are still read
            yield name, [], [reject("unreadable", f"{type(err).__name__}: {err}", name)]
            continue
        yield (name, *parse_file(kind, name, data))


def source_name(kind: str, location: str, root: str) -> str:
    """A file's (or unlistable folder's) name relative to `root`, as outputs and origins name it."""
    prefix = root.rstrip("/") + "/"
    name = printable_name(location[len(prefix) :] if location.startswith(prefix) else location)
    if kind == FOLDER:
        return "./" if location.rstrip("/") == root.rstrip("/") else f"{name}/"
    return name


def folder_reject(location: str, name: str) -> Rejected:
    detail = f"folder cannot be listed ({_listing_error(location)}): the source files in it are not read"
    return reject("unreadable", detail, name)


def parse_source(data: bytes, location: str, *, files: dict[str, tuple[str, str]]) -> tuple[list, list]:
    """`parse_file` of a file that `lamops.compute.map_files` read: `files` maps each location to its
    (kind, name)."""
    kind, name = files[location]
    return parse_file(kind, name, data)


# ---- parsing ----------------------------------------------------------------------------------------------
def parse_file(kind: str, location: str, data: bytes) -> tuple[list[RawEntry], list[Rejected]]:
    """The raw entries of one source file; what cannot be read is rejected with file and line. A file that is
    not UTF-8 text at all (UTF-16, UTF-32, binary) is one rejected record: its lines would be garbage."""
    if len(data) > MAX_FILE_BYTES:
        return [], [reject("malformed", f"file of {len(data):,} bytes is over the limit", location)]
    error = _encoding_error(data)
    if error:
        return [], [reject("malformed", error, location, data[:2000].decode("utf-8", "replace"))]
    data = data.removeprefix(codecs.BOM_UTF8)
    if kind == "howto":
        return _parse_howto(location, data)
    if kind == "query":
        return _parse_queries(location, data)
    return _parse_docs(location, data)


def _encoding_error(data: bytes) -> str | None:
    if data.startswith(_WIDE_BOMS):
        return "UTF-16 or UTF-32 text (its byte-order mark says so): source files must be UTF-8"
    head = data[:4096]
    if head.count(0) * 4 >= len(head) > 0:
        return "NUL bytes in a quarter of the first bytes (UTF-16 or UTF-32 text, or binary): must be UTF-8"
    return None


def _parse_howto(location: str, data: bytes) -> tuple[list[RawEntry], list[Rejected]]:
    entries, rejects = [], []
    for number, raw, text, error in iter_lines(data, location):
        origin = f"{location}:{number}"
        obj = None
        if error is None:
            try:
                obj = json.loads(raw.decode("utf-8"))
            except json.JSONDecodeError as err:
                error = f"not JSON: {err.msg} at column {err.colno}"
            except Exception as err:  # too deep (RecursionError), an integer too long (ValueError), ...
                error = truncate(f"not JSON: {type(err).__name__}: {err}", 300)
        if error is None:
            error = _howto_shape_error(obj)
        if error:
            rejects.append(reject("malformed", error, origin, text))
            continue
        entries.append(RawEntry(kind="howto", origin=origin, title=obj["title"], steps=list(obj["steps"])))
    return entries, rejects


def _howto_shape_error(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    if not isinstance(obj.get("title"), str):
        return "field title: missing or not a string"
    steps = obj.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        return "field steps: missing or not a list of strings"
    return None


def _parse_queries(location: str, data: bytes) -> tuple[list[RawEntry], list[Rejected]]:
    entries, rejects = [], []
    for number, _raw, text, error in iter_lines(data, location, bare_cr=True):
        origin = f"{location}:{number}"
        if error:
            rejects.append(reject("malformed", error, origin, text))
        else:
            entries.append(RawEntry(kind="query", origin=origin, title=text.strip()))
    return entries, rejects


# ---- Markdown pages ----------------------------------------------------------------------------------------
_ATX_OPEN = re.compile(r" {0,3}(#+)")
_FENCE = re.compile(r" {0,3}(?:```|~~~)")
_LIST_ITEM = re.compile(r"^\s{0,3}(?:\d{1,3}[.)]|[-*+])\s+(.*)$")


def _heading(line: str) -> tuple[int, str] | None:
    """(level, title) of an ATX heading line (`## Title ##`); level 0 for a line of two or more #s that is not
    one (`##Title`, `##` and a zero-width space, seven #s); None for any other line."""
    m = _ATX_OPEN.match(line)
    if not m:
        return None
    level, rest = len(m.group(1)), line[m.end() :]
    if (rest and not rest[0].isspace()) or level > 6:
        return (0, line.strip()) if level >= 2 else None
    return level, _atx_title(rest)


def _atx_title(rest: str) -> str:
    """The heading's text after its #s: less the whitespace around it and a closing run of #s (what
    `^##\\s+(.+?)\\s*#*\\s*$` captured, "C#" giving "C" included), in linear time."""
    body = rest.strip()
    return body.rstrip("#").rstrip() or body[:1]


def _setext_level(line: str) -> int:
    """1 or 2 for a setext underline (`===` / `---`, up to 3 spaces before), else 0."""
    core = line.rstrip(" \t")
    text = core.lstrip(" ")
    if not text or len(core) - len(text) > 3 or text.strip(text[0]):
        return 0
    return {"=": 1, "-": 2}.get(text[0], 0)


class _Block:
    """The lines from one heading to the next (or from the top of the page to the first heading)."""

    def __init__(self, level: int, title: str, line: int, heading: str) -> None:
        self.level, self.title, self.line, self.heading = level, title, line, heading
        self.body: list[str] = []


def _blocks(text: str) -> list[_Block]:
    """The page split at every heading (ATX of any level, setext, malformed `##Title`); lines in fenced
    code are body. The first block (level -1) is what precedes the first heading."""
    blocks = [_Block(-1, "", 1, "")]
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
        found = None if fenced else _heading(line)
        if found is None and not fenced and blocks[-1].body:
            above = blocks[-1].body[-1]
            setext = _setext_level(line)
            if setext and above.strip() and not _LIST_ITEM.match(above):
                blocks[-1].body.pop()
                blocks.append(_Block(setext, above.strip(), number - 1, f"{above}\n{line}"))
                continue
        if found is not None:
            blocks.append(_Block(found[0], found[1], number, line))
        else:
            blocks[-1].body.append(line)
    return blocks


def _parse_docs(location: str, data: bytes) -> tuple[list[RawEntry], list[Rejected]]:
    """A task per level-2 section with a step list (origin `file#k`, k counting level-2 headings); every
    other block that holds list items is quarantined whole, so its steps never join another task's plan.
    Quarantine origins carry the line: `file:line#k`, or `file:line` for a block that is not a section."""
    # Bytes that are not UTF-8 reject the sections that hold them; the others are kept.
    text = data.decode("utf-8", "replace")
    entries, rejects = [], []
    k = 0
    for block in _blocks(text):
        steps = [m.group(1) for m in map(_LIST_ITEM.match, block.body) if m]
        if block.level != 2:
            if steps:
                where = f"{location}:{block.line}"
                rejects.append(reject("malformed", _not_a_section(block), where, block.heading or steps[0]))
            continue
        k += 1
        origin, where = f"{location}#{k}", f"{location}:{block.line}#{k}"
        if "\ufffd" in block.title or any("\ufffd" in line for line in block.body):
            rejects.append(reject("malformed", "section holds bytes that are not UTF-8", where, block.title))
        elif not block.title.strip():
            rejects.append(reject("malformed", "level-2 heading without a title", where, block.heading))
        elif not steps:
            rejects.append(reject("no_plan", "section has no step list", where, block.title))
        else:
            body = "\n".join(block.body)
            entries.append(
                RawEntry(kind="doc", origin=origin, where=where, title=block.title, text=body, steps=steps)
            )
    return entries, rejects


def _not_a_section(block: _Block) -> str:
    if block.level == -1:
        return "list items before the first heading: only a level-2 section (`## Title`) is a task"
    if block.level == 0:
        return "list items under a line that is not a heading (a heading needs a space after its #s)"
    return f"list items under a level-{block.level} heading: only a level-2 section (`## Title`) is a task"
