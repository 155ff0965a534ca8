"""A user's own .docx (`lamops agent`): check and read the document, count what the environment cannot show,
check the output path and write the result atomically. Only .docx bytes and files here; running the agent
on the document is `lamops.agents.user_doc`.

What the environment cannot show or edit is marked in the canvas by a placeholder (see `lamops.env.canvas`):
`[image]`, `[chart]`, `[diagram]`, `[shape]`, `[embedded object: ...]`, and, with their text shown
read-only, `[text box: ...]`, `[content control: ...]` (a block-level one on a line of its own),
`[equation: ...]`, `[inserted: ...]` / `[deleted: ...]` for tracked changes, `[footnote N]`, `[endnote N]`,
`[nested table RxC: ...]`; first-page and even-page headers and footers get read-only lines of their own.
The agent sees each placeholder where the thing is; `inspect_document` counts them for the user.
"""

from __future__ import annotations

import io
import os
import posixpath
import tempfile
import zipfile
import zlib
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

# The package relationship naming the main part, and the prefix of ISO/IEC 29500 Strict's namespaces (Word's
# "Strict Open XML Document", which python-docx cannot read: it knows only the transitional namespaces).
OFFICE_DOCUMENT = "/relationships/officeDocument"
STRICT_NS = "http://purl.oclc.org/ooxml/"

SHOWN = "text, tables, formatting, comments, headers and footers"
# Kinds the canvas only marks (or leaves out), in the order the report lists them: (singular, plural).
KINDS: tuple[tuple[str, str], ...] = (
    ("image", "images"),
    ("chart", "charts"),
    ("diagram", "diagrams (SmartArt)"),
    ("shape", "shapes"),
    ("text box", "text boxes"),
    ("content control", "content controls"),
    ("equation", "equations"),
    ("embedded object", "embedded objects"),
    ("tracked change", "tracked changes"),
    ("footnote", "footnotes"),
    ("endnote", "endnotes"),
    ("nested table", "nested tables"),
    ("first-page header", "first-page headers"),
    ("first-page footer", "first-page footers"),
    ("even-page header", "even-page headers"),
    ("even-page footer", "even-page footers"),
)


class UserDocumentError(ValueError):
    """A document, output path or request `lamops agent` cannot use; the message is one line for the user."""


# ---------------------------------------------------------------------------------------------- report


class DocumentReport(BaseModel):
    """What the environment cannot show or edit in a document: counts by kind (`KINDS`, then
    `other:<element>` for any other element holding text)."""

    counts: dict[str, int] = Field(default_factory=dict)

    def not_shown(self) -> list[str]:
        """'2 images', '1 text box', ... in `KINDS` order, then other elements."""
        out = [
            f"{n} {singular if n == 1 else plural}"
            for singular, plural in KINDS
            if (n := self.counts.get(singular, 0))
        ]
        others = {k.split(":", 1)[1]: n for k, n in sorted(self.counts.items()) if k.startswith("other:")}
        if others:
            total = sum(others.values())
            out.append(f"{total} other element{'s' if total > 1 else ''} ({', '.join(others)})")
        return out

    def summary(self) -> str:
        missing = self.not_shown()
        if not missing:
            return f"The environment shows {SHOWN}: everything in this document is shown."
        return (
            f"The environment shows {SHOWN}; not shown: {', '.join(missing)} (the agent's canvas marks "
            "each with a placeholder such as [image] or [text box: ...], read-only)."
        )


def inspect_document(data: bytes, name: str = "document") -> DocumentReport:
    """Count what the environment's canvas only marks by a placeholder, or leaves out, in a .docx.

    Raises UserDocumentError, naming `name` and what is wrong, when the bytes are not a .docx the environment
    can open and show."""
    from lamops.env.canvas import canvas_items

    live = _open(data, name)
    notes: Counter = Counter()
    try:
        canvas_items(live, notes)
    except Exception as e:  # the environment must show any document python-docx opens: a bug to report
        raise UserDocumentError(
            f"{name}: the environment cannot render this document ({type(e).__name__}: {e}); please report it"
        ) from None
    order = {kind: i for i, (kind, _) in enumerate(KINDS)}
    counts = dict(sorted(notes.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    return DocumentReport(counts=counts)


# ---------------------------------------------------------------------------------------------- input, output


def _open(data: bytes, name: str):
    """The document as the environment's LiveDocument, or UserDocumentError naming `name` and what is
    wrong."""
    from lxml import etree

    from lamops.env.document import LiveDocument

    check_archive(data, name)
    try:
        live = LiveDocument(data)
    except ValueError as e:  # python-docx: "file '...' is not a Word file, content type is '...'"
        if "content type" in str(e):
            kind = str(e).rsplit("content type is", 1)[-1].strip(" '")
            raise UserDocumentError(
                f"{name}: not a Word document but {kind} (a macro-enabled .docm or a template .dotx? "
                "save it as .docx)"
            ) from None
        raise UserDocumentError(f"{name}: a corrupt .docx ({e})") from None
    except etree.XMLSyntaxError as e:
        raise UserDocumentError(f"{name}: a corrupt .docx (a part is not well-formed XML: {e})") from None
    except KeyError as e:  # a part its relationships name is missing from the archive
        missing = e.args[0] if e.args else e
        raise UserDocumentError(f"{name}: a corrupt .docx (missing part: {missing})") from None
    except Exception as e:
        raise UserDocumentError(f"{name}: cannot be opened as a .docx ({type(e).__name__}: {e})") from None
    _refuse_entities(live, name)
    return live


def _refuse_entities(live, name: str) -> None:
    """Refuse a document whose XML uses entities declared in a DOCTYPE. python-docx neither resolves them
    (so no external entity is ever fetched) nor keeps the DOCTYPE on save, so a saved copy would hold
    undefined `&name;` references and not reopen. Expanding them instead would mean a second, entity-resolving
    parse of every part, open to entity-expansion bombs, for documents Word never writes (the Open Packaging
    Conventions forbid DTDs in a package's XML)."""
    from lxml import etree

    for part in live.doc.part.package.iter_parts():
        element = getattr(part, "element", None)
        if element is None:
            continue
        entity = next(element.iter(etree.Entity), None)
        if entity is not None:
            raise UserDocumentError(
                f"{name}: {part.partname} uses the XML entity {entity.text} declared in a DOCTYPE, which a "
                ".docx may not hold; save the document again without it"
            )


def check_archive(data: bytes, name: str) -> None:
    """Raise UserDocumentError (naming `name` and what is wrong) unless `data` is a sound zip archive holding
    a Word document's main parts."""
    if not data:
        raise UserDocumentError(f"{name}: the file is empty, not a .docx document")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        if data.startswith(b"PK\x03\x04"):
            raise UserDocumentError(
                f"{name}: a corrupt .docx (a truncated zip archive: its directory is missing)"
            )
        if data.startswith(b"\xd0\xcf\x11\xe0") and "EncryptedPackage".encode("utf-16-le") in data:
            raise UserDocumentError(
                f"{name}: a password-protected (encrypted) .docx; remove its password in Word "
                "(File > Info > Protect Document) and save it again"
            )
        raise UserDocumentError(f"{name}: not a .docx document (not a zip archive{_looks_like(data)})")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = set(z.namelist())
            bad = z.testzip()
            rels = z.read("_rels/.rels") if bad is None and "_rels/.rels" in names else None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise UserDocumentError(f"{name}: a corrupt .docx (a damaged zip archive: {e})") from None
    if bad is not None:
        raise UserDocumentError(f"{name}: a corrupt .docx (zip entry {bad} fails its checksum)")
    if "[Content_Types].xml" not in names:
        raise UserDocumentError(
            f"{name}: a zip archive but not a Word document (no [Content_Types].xml in it)"
        )
    main, strict = _main_part(rels, name)
    if strict:
        raise UserDocumentError(
            f"{name}: a Strict Open XML document, which the environment cannot read; save it in Word as "
            "Word Document (.docx), not Strict Open XML Document"
        )
    if main not in names:
        raise UserDocumentError(f"{name}: a zip archive but not a Word document (no {main} in it)")


def _main_part(rels: bytes | None, name: str) -> tuple[str, bool]:
    """The main part's name in the zip archive, as Word and python-docx find it: the target of the package's
    officeDocument relationship in `_rels/.rels` (usually word/document.xml, not always); and whether that
    relationship is Strict OOXML's. A package without one is refused."""
    from lxml import etree

    if rels is None:
        raise UserDocumentError(f"{name}: a zip archive but not a Word document (no _rels/.rels in it)")
    try:  # no DTD, no entities, no network: the package relationships are plain XML
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(rels, parser)
    except etree.XMLSyntaxError as e:
        raise UserDocumentError(
            f"{name}: a corrupt .docx (_rels/.rels is not well-formed XML: {e})"
        ) from None
    for rel in root:
        kind = rel.get("Type") or ""
        if kind.endswith(OFFICE_DOCUMENT) and rel.get("TargetMode") != "External":
            return posixpath.normpath(rel.get("Target") or "").lstrip("/"), kind.startswith(STRICT_NS)
    raise UserDocumentError(
        f"{name}: a zip archive but not a Word document (_rels/.rels names no main document part)"
    )


def _looks_like(data: bytes) -> str:
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        return "; an old binary .doc? open it in Word and save it as .docx"
    if data.startswith(b"{\\rtf"):
        return "; an RTF file? open it in Word and save it as .docx"
    if data.startswith(b"%PDF"):
        return "; a PDF"
    return ""


def read_document(path: Path) -> bytes:
    """The bytes of the user's document, read once, checked to be a zip archive with a Word document's main
    parts (`inspect_document` opens it)."""
    path = Path(path)
    if not path.exists():
        raise UserDocumentError(f"{path}: no such file")
    if not path.is_file():
        raise UserDocumentError(f"{path}: not a file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserDocumentError(f"{path}: cannot be read ({e.strerror or e})") from None
    check_archive(data, str(path))
    return data


def check_output(doc: Path, out: Path, *, overwrite: bool) -> None:
    """Refuse an output that is the input (by path or by link), a folder, not .docx, in a missing folder, or
    that exists already without `overwrite`."""
    doc, out = Path(doc), Path(out)
    same = out.resolve() == doc.resolve()
    if not same and out.exists() and doc.exists():
        same = os.path.samefile(out, doc)
    if same:
        raise UserDocumentError(
            f"--out {out} is the input document; the input is never modified: write to another file"
        )
    if out.suffix.lower() != ".docx":
        raise UserDocumentError(f"--out {out}: the output must be a .docx file")
    if out.is_dir():
        raise UserDocumentError(f"--out {out} is a folder; give a file name")
    if not out.parent.resolve().is_dir():
        raise UserDocumentError(f"--out {out}: the folder {out.parent} does not exist")
    if out.exists() and not overwrite:
        raise UserDocumentError(f"--out {out} exists; pass --overwrite to replace it")


def save_document(data: bytes, out: Path, *, overwrite: bool) -> Path:
    """Write `data` to `out` atomically: a temporary file in the same folder, synced, then renamed (or,
    without `overwrite`, linked: an `out` that appeared meanwhile is not replaced). Nothing half-written is
    left behind, and nothing is written unless `data` reopens as a .docx."""
    out = Path(out)
    _check_reopens(data, out)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, out)
        else:
            try:
                os.link(tmp, out)  # fails if `out` exists: no check-then-write race
            except FileExistsError:
                raise UserDocumentError(f"--out {out} exists; pass --overwrite to replace it") from None
            except OSError:  # a file system without hard links
                if out.exists():
                    raise UserDocumentError(f"--out {out} exists; pass --overwrite to replace it") from None
                os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _check_reopens(data: bytes, out: Path) -> None:
    """Raise UserDocumentError unless python-docx opens `data`: a result that does not reopen is never
    written."""
    import docx

    try:
        docx.Document(io.BytesIO(data))
    except Exception as e:
        raise UserDocumentError(
            f"--out {out}: the result does not reopen as a .docx ({type(e).__name__}: {e}); nothing was "
            "written; please report it"
        ) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
