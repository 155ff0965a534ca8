"""Built-in template documents that episodes of the Word-like environment start from.

Each template is built by code with python-docx, so the library needs no binary assets,
and the bytes are deterministic: the same template gives the same .docx (and sha256) in
any process, on any day, on any machine.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import docx
import docx.document
from docx.enum.section import WD_ORIENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK, WD_COLOR_INDEX
from docx.shared import Inches, Length, Pt, RGBColor
from docx.text.paragraph import Paragraph
from docx.text.run import Run

from lamops.io import write_atomic

__all__ = [
    "TEMPLATES",
    "TemplateInfo",
    "TemplateLibraryError",
    "TemplateSpec",
    "UnknownTemplateError",
    "build_library",
    "load_library",
    "normalize_docx_bytes",
    "template_bytes",
]

INDEX_FILE = "index.json"

# Timezone-aware on purpose: python-docx renders naive datetimes in comments via the
# local timezone, which would make the bytes depend on the machine.
_FIXED_DATETIME = dt.datetime(2024, 1, 1, 0, 0, 0, tzinfo=dt.UTC)
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_ZIP_EXTERNAL_ATTR = 0o100644 << 16  # regular file, rw-r--r--
_ZIP_CREATE_SYSTEM = 3  # Unix; ZipInfo's default depends on the platform
_ZIP_COMPRESSLEVEL = 6


@dataclass(frozen=True)
class TemplateSpec:
    """A named template: a one-line description and a function that builds it."""

    name: str
    description: str
    build: Callable[[], docx.document.Document]


@dataclass(frozen=True)
class TemplateInfo:
    """A built template: its sha256 and, for an on-disk library, its file."""

    name: str
    description: str
    sha256: str
    path: Path | None


class UnknownTemplateError(ValueError, KeyError):
    """Raised for a template name that is not in TEMPLATES."""

    # KeyError.__str__ would repr() the message; show it as written.
    __str__ = ValueError.__str__


class TemplateLibraryError(ValueError):
    """Raised when an on-disk template library is missing files or was altered."""


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _R:
    """Text of one run and its direct formatting (None leaves the style's value)."""

    text: str
    bold: bool | None = None
    italic: bool | None = None
    underline: bool | None = None
    color: RGBColor | None = None
    highlight: WD_COLOR_INDEX | None = None
    font: str | None = None
    size: Length | None = None


def _add_runs(paragraph: Paragraph, parts: Sequence[str | _R]) -> list[Run]:
    runs = []
    for part in parts:
        spec = _R(part) if isinstance(part, str) else part
        run = paragraph.add_run(spec.text)
        # Only set what is asked for: plain runs must stay free of any w:rPr.
        if spec.bold is not None:
            run.bold = spec.bold
        if spec.italic is not None:
            run.italic = spec.italic
        if spec.underline is not None:
            run.underline = spec.underline
        if spec.color is not None:
            run.font.color.rgb = spec.color
        if spec.highlight is not None:
            run.font.highlight_color = spec.highlight
        if spec.font is not None:
            run.font.name = spec.font
        if spec.size is not None:
            run.font.size = spec.size
        runs.append(run)
    return runs


def _para(doc: docx.document.Document, *parts: str | _R, style: str | None = None) -> Paragraph:
    """Add a paragraph made of the given runs (plain strings are unformatted runs)."""
    paragraph = doc.add_paragraph(style=style)
    _add_runs(paragraph, parts)
    return paragraph


def _table(doc: docx.document.Document, rows: Sequence[Sequence[str]]) -> None:
    table = doc.add_table(rows=len(rows), cols=len(rows[0]))
    table.style = "Table Grid"
    for row, values in zip(table.rows, rows, strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value


def _comment(doc: docx.document.Document, run: Run, text: str, author: str, initials: str) -> None:
    comment = doc.add_comment(run, text=text, author=author, initials=initials)
    # add_comment stamps the current time and python-docx has no public setter.
    comment._comment_elm.date = _FIXED_DATETIME


def _page_break_after(paragraph: Paragraph) -> None:
    # At the end of the page's last paragraph, so no empty paragraph is needed.
    paragraph.add_run().add_break(WD_BREAK.PAGE)


def _new_document() -> docx.document.Document:
    doc = docx.Document()
    # Explicit page setup: python-docx's default template has 1.25 inch side margins.
    for section in doc.sections:
        section.orientation = WD_ORIENT.PORTRAIT
        section.page_width = Inches(8.5)
        section.page_height = Inches(11)
        for side in ("top_margin", "bottom_margin", "left_margin", "right_margin"):
            setattr(section, side, Inches(1))
    return doc


def _finish(doc: docx.document.Document, name: str) -> docx.document.Document:
    """Create every part an episode may write to, and fix all time-dependent metadata."""
    for section in doc.sections:
        # Unlinking creates the header/footer parts (one empty paragraph each) now, so an
        # episode never has to add a package part.
        section.header.is_linked_to_previous = False
        section.footer.is_linked_to_previous = False
    # python-docx creates the comments part lazily; touching it relates an (empty) part
    # to the document, which is then saved.
    _ = doc.comments
    props = doc.core_properties
    props.title = name
    props.author = "lamops"
    props.last_modified_by = "lamops"
    props.created = _FIXED_DATETIME
    props.modified = _FIXED_DATETIME
    props.last_printed = _FIXED_DATETIME
    props.revision = 1
    return doc


# ---------------------------------------------------------------------------
# Template builders (content only; _new_document/_finish wrap them)
# ---------------------------------------------------------------------------


def _fill_plain_text(doc: docx.document.Document) -> None:
    _para(
        doc,
        "This memo from Dana Whitfield, Director of Operations at Meridian Supply Co., "
        "was sent to all regional managers on March 4, 2024.",
    )
    _para(
        doc,
        "Starting on April 15, we will consolidate the Dayton and Columbus warehouses "
        "into a single distribution center located at 2200 Harmon Road in Grove City.",
    )
    _para(
        doc,
        "The move follows a six-month review which found that the two sites were "
        "using only 58 percent of their combined storage capacity.",
    )
    _para(
        doc,
        "Combining operations is expected to save roughly $410,000 per year in lease "
        "payments, utilities and duplicate equipment maintenance.",
    )
    _para(
        doc,
        "All 46 warehouse employees will be offered positions at Grove City, and the "
        "company will reimburse extra commuting mileage through December 31.",
    )
    _para(
        doc,
        "Please share this news with your teams before Friday, March 8, and send any "
        "scheduling concerns to Priya Natarajan in Human Resources at extension 4417.",
    )
    _para(
        doc,
        "Thank you for your patience during the transition; a detailed moving "
        "timeline will follow in a separate message later this month.",
    )


def _fill_headings_sections(doc: docx.document.Document) -> None:
    _para(doc, "Customer Support Review, Q1 2024", style="Title")
    _para(doc, "Summary", style="Heading 1")
    _para(
        doc,
        "Between January 1 and March 31, 2024, the support team resolved 12,480 "
        "tickets, an increase of 9 percent over the final quarter of 2023.",
    )
    _para(doc, "Performance", style="Heading 1")
    _para(doc, "Response Times", style="Heading 2")
    _para(
        doc,
        "Median first response time fell from 3.2 hours to 2.1 hours after a new "
        "triage rota was introduced in mid-February.",
    )
    _para(doc, "Satisfaction Scores", style="Heading 2")
    _para(
        doc,
        "The post-ticket survey averaged 4.4 out of 5 across 1,932 responses, with "
        "the strongest ratings coming from enterprise accounts.",
    )
    _para(doc, "Challenges", style="Heading 1")
    _para(
        doc,
        "Staffing gaps during the week of March 11 pushed the backlog above 900 open "
        "cases, which took eleven working days to clear.",
    )
    _para(doc, "Recommendations", style="Heading 1")
    _para(doc, "Hiring", style="Heading 2")
    _para(
        doc,
        "We propose adding three agents to the evening shift so that live coverage "
        "extends until 10 p.m. Eastern on weekdays.",
    )
    _para(doc, "Tooling", style="Heading 2")
    _para(
        doc,
        "Adopting a shared macro library in the help desk software should cut "
        "average handling time by an estimated four minutes per request.",
    )


def _fill_table_report(doc: docx.document.Document) -> None:
    _para(doc, "Quarterly Sales Report, 2023", style="Title")
    _para(
        doc,
        "The table below summarises net sales, in thousands of US dollars, for each "
        "sales territory across the first three quarters of the 2023 financial year.",
    )
    _table(
        doc,
        [
            ["Region", "Q1", "Q2", "Q3"],
            ["North", "1,240", "1,315", "1,402"],
            ["South", "980", "1,045", "1,118"],
            ["West", "1,530", "1,488", "1,610"],
        ],
    )
    _para(
        doc,
        "The largest territory kept its lead in every quarter, while the smallest one "
        "grew fastest, rising just over 14 percent from the opening quarter to the third.",
    )


def _fill_lists(doc: docx.document.Document) -> None:
    _para(
        doc,
        "Our team moves to the fourth floor of the Larkspur Building on Monday, "
        "June 3, 2024, and a few things need attention first.",
    )
    for item in (
        "Label every box with your name and new desk number",
        "Back up local files to the shared drive by May 29",
        "Return borrowed laptops and docking stations to the IT counter",
        "Remove personal items from the kitchen refrigerator",
    ):
        _para(doc, item, style="List Bullet")
    _para(
        doc,
        "On moving day itself, please follow these steps in order so that the "
        "removal crew can work without interruptions.",
    )
    for item in (
        "Log off and shut down your computer before 5 p.m. Friday",
        "Unplug monitors and coil the cables inside a packing crate",
        "Leave keys to filing cabinets with the floor warden",
        "Collect your new access badge from reception on Monday morning",
    ):
        _para(doc, item, style="List Number")
    _para(
        doc,
        "Questions about the relocation can go to Marcus Lee, our facilities "
        "coordinator, who is available at extension 2208 throughout the week.",
    )


def _fill_review_comments(doc: docx.document.Document) -> None:
    _para(
        doc,
        "This draft recommends Clearpath Payroll as the provider for our new payroll "
        "system, replacing the in-house tool used since 2016.",
    )
    _para(
        doc,
        "Three vendors were evaluated between September and November 2023, each "
        "given a two-week trial with anonymised records for 120 staff.",
    )
    # Comments anchor on whole runs, so the commented phrase is a run of its own.
    fee = _para(
        doc,
        "Clearpath scored highest on accuracy and support, and its ",
        "annual licence of $38,500",
        " is the lowest of the three quotes received.",
    )
    _comment(
        doc,
        fee.runs[1],
        "Please confirm whether this figure includes the onboarding fee.",
        author="Elena Vargas",
        initials="EV",
    )
    timeline = _para(
        doc,
        "Implementation would begin on February 5, 2024 and finish ",
        "within ten weeks",
        ", including two parallel runs against the old system.",
    )
    _comment(
        doc,
        timeline.runs[1],
        "This looks optimistic given the year-end audit; can we allow twelve?",
        author="Tom Okafor",
        initials="TO",
    )
    _para(
        doc,
        "Finance is asked to approve the recommendation at its meeting on January 17 "
        "so that contracts can be signed before the end of the month.",
    )


def _fill_header_footer(doc: docx.document.Document) -> None:
    section = doc.sections[0]
    section.header.is_linked_to_previous = False
    section.footer.is_linked_to_previous = False
    section.header.paragraphs[0].text = "Bluestone Architecture Ltd."
    section.footer.paragraphs[
        0
    ].text = "14 Quay Street, Bristol BS1 4DJ | +44 117 496 0321 | www.bluestone-arch.example"
    _para(doc, "Dear Ms. Harrington,")
    _para(
        doc,
        "Thank you for meeting with us on 6 February to discuss the extension to "
        "your family home at 27 Elm Grove, Clifton.",
    )
    _para(
        doc,
        "As agreed, we will prepare outline drawings for a single-storey rear "
        "extension of about 32 square metres with a glazed roof section.",
    )
    _para(
        doc,
        "Our fee for the concept and planning stages is £6,800 plus VAT, payable in "
        "two equal instalments on completion of each stage.",
    )
    _para(
        doc,
        "We expect to submit the planning application to the city council by 22 "
        "March, with a decision normally issued within eight weeks.",
    )
    _para(
        doc,
        "Please sign and return the enclosed engagement letter so that our team can "
        "begin the measured survey during the week of 19 February.",
    )
    _para(doc, "Yours sincerely,")
    _para(doc, "Owen Pryce, Project Director")


def _fill_multi_page(doc: docx.document.Document) -> None:
    _para(doc, "Working Hours", style="Heading 1")
    _para(
        doc,
        "The standard office day at Fenwick Analytics runs from 9 a.m. to 5:30 p.m., "
        "Monday to Friday, with a one-hour unpaid lunch break.",
    )
    _para(
        doc,
        "Staff may start as early as 7:30 a.m. or finish as late as 7 p.m., provided "
        "the core hours between 10 a.m. and 4 p.m. are covered.",
    )
    last = _para(
        doc,
        "Overtime must be approved in advance by a line manager and is paid at "
        "1.5 times the normal hourly rate.",
    )
    _page_break_after(last)
    _para(doc, "Leave and Holidays", style="Heading 1")
    _para(
        doc,
        "Full-time employees receive 25 days of paid annual leave, plus the eight "
        "public holidays observed in England and Wales.",
    )
    _para(
        doc,
        "Requests for more than five consecutive days off should be submitted "
        "through the HR portal at least four weeks ahead.",
    )
    last = _para(
        doc,
        "Up to three unused days may be carried into the following year, but "
        "they must be taken before the end of March.",
    )
    _page_break_after(last)
    _para(doc, "Expenses and Travel", style="Heading 1")
    _para(
        doc,
        "Business travel should be booked through Corporate Trips Ltd. so that fares "
        "and hotel rates stay within the agreed company limits.",
    )
    _para(
        doc,
        "Receipts for meals, taxis and parking must be uploaded within 30 days, and "
        "claims over £250 need a director's signature.",
    )


def _fill_mixed_formatting(doc: docx.document.Document) -> None:
    centred = _para(
        doc,
        _R("Introducing the Aurora Smart Thermostat,", bold=True),
        " shipping to 1,200 retail stores across North America from 1 May 2024.",
    )
    centred.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _para(
        doc,
        "Aurora learns each household's schedule within ",
        _R("seven days", bold=True),
        " and adjusts heating automatically, cutting energy bills by ",
        _R("up to 18 percent", bold=True, italic=True),
        ".",
    )
    _para(
        doc,
        "Pre-orders open on ",
        _R("15 April", italic=True),
        ", and early customers receive ",
        _R("a free installation voucher", underline=True),
        " worth $79 from our partner electricians.",
    )
    _para(
        doc,
        "Please note that the ",
        _R("retail price of $229", color=RGBColor(0xC0, 0, 0)),
        " must not be shared with the press before the embargo lifts.",
    )
    _para(
        doc,
        "Marketing has prepared ",
        _R("three short demo videos", highlight=WD_COLOR_INDEX.YELLOW),
        " that store staff can play on the display screens next to the shelf.",
    )
    _para(
        doc,
        _R(
            "For technical specifications, contact the product team at "
            "aurora-support@halcyonhome.example or call 1-800-555-0142.",
            font="Georgia",
            size=Pt(13),
        ),
    )


def _fill_meeting_notes(doc: docx.document.Document) -> None:
    _para(doc, "Website Redesign Kickoff, 9 April 2024", style="Title")
    _para(
        doc,
        "Attendees: Sarah Chen (chair), Raj Patel, Lucy Moreno, David Kim and Amara "
        "Osei; apologies were received from Ben Walsh.",
    )
    _para(doc, "Action Items", style="Heading 1")
    _table(
        doc,
        [
            ["Task", "Owner", "Due"],
            ["Draft sitemap and page inventory", "LM", "12 April"],
            ["Collect analytics baseline", "RP", "19 April"],
        ],
    )
    _para(doc, "Decisions", style="Heading 1")
    for item in (
        "The redesigned site will launch on 1 July 2024",
        "Budget is capped at $85,000 including agency fees",
        "The blog moves to its own subdomain",
        "Weekly check-ins are set for Tuesdays at 10 a.m.",
    ):
        _para(doc, item, style="List Bullet")
    _para(
        doc,
        "The group meets next on Tuesday, 23 April, in Conference Room B, where the "
        "proposed page structure will be reviewed.",
    )


def _spec(name: str, description: str, fill: Callable[[docx.document.Document], None]) -> TemplateSpec:
    def build() -> docx.document.Document:
        doc = _new_document()
        fill(doc)
        return _finish(doc, name)

    build.__name__ = f"build_{name}"
    return TemplateSpec(name=name, description=description, build=build)


TEMPLATES: dict[str, TemplateSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "plain_text",
            "A one-page business memo about a warehouse consolidation, written as seven "
            "plain paragraphs with no headings, lists, tables or special formatting.",
            _fill_plain_text,
        ),
        _spec(
            "headings_sections",
            "A quarterly customer support report with a title, Heading 1 and Heading 2 "
            "sections, and a short body paragraph under each heading.",
            _fill_headings_sections,
        ),
        _spec(
            "table_report",
            "A short regional sales report with a title, an intro paragraph, a 4x4 grid "
            "table of quarterly sales figures with a header row, and a closing paragraph.",
            _fill_table_report,
        ),
        _spec(
            "lists",
            "An office move notice with a bulleted list of four preparation tasks and a "
            "numbered list of four moving-day steps between plain paragraphs.",
            _fill_lists,
        ),
        _spec(
            "review_comments",
            "A draft vendor recommendation of five plain paragraphs carrying two reviewer "
            "comments anchored on specific phrases.",
            _fill_review_comments,
        ),
        _spec(
            "header_footer",
            "A formal client letter from an architecture firm with the company name in "
            "the page header and its address line in the page footer.",
            _fill_header_footer,
        ),
        _spec(
            "multi_page",
            "A three-page employee handbook excerpt separated by page breaks, each page "
            "with a Heading 1 and two or three plain paragraphs.",
            _fill_multi_page,
        ),
        _spec(
            "mixed_formatting",
            "A product launch announcement with rich text formatting: bold, italic, "
            "underlined, red and highlighted phrases, a centred paragraph and a paragraph "
            "in a different font and size.",
            _fill_mixed_formatting,
        ),
        _spec(
            "meeting_notes",
            "Meeting notes from a project kickoff with a title, an attendees paragraph, a "
            "small table of action items, a bulleted list of decisions and a closing "
            "paragraph.",
            _fill_meeting_notes,
        ),
    )
}


# ---------------------------------------------------------------------------
# Bytes, library on disk
# ---------------------------------------------------------------------------


def normalize_docx_bytes(data: bytes) -> bytes:
    """Rewrite a .docx zip with fixed entry metadata so equal content gives equal bytes.

    Entries keep their order and content; timestamps, permissions, host system and
    compression are fixed.
    """
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for entry in src.infolist():
            info = zipfile.ZipInfo(entry.filename, date_time=_ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = _ZIP_EXTERNAL_ATTR
            info.create_system = _ZIP_CREATE_SYSTEM
            dst.writestr(info, src.read(entry), compresslevel=_ZIP_COMPRESSLEVEL)
    return out.getvalue()


def _spec_for(name: str) -> TemplateSpec:
    try:
        return TEMPLATES[name]
    except KeyError:
        known = ", ".join(TEMPLATES)
        raise UnknownTemplateError(f"unknown template {name!r}; known templates: {known}") from None


@functools.cache  # an lru_cache without a size bound
def template_bytes(name: str) -> bytes:
    """The .docx bytes of template `name`, built in memory (deterministic, cached)."""
    doc = _spec_for(name).build()
    buffer = io.BytesIO()
    doc.save(buffer)
    return normalize_docx_bytes(buffer.getvalue())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_library(out_dir: Path) -> list[TemplateInfo]:
    """Write <name>.docx for every template and an index.json into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    infos = []
    for spec in TEMPLATES.values():
        data = template_bytes(spec.name)
        path = out_dir / f"{spec.name}.docx"
        write_atomic(path, data)
        infos.append(TemplateInfo(spec.name, spec.description, _sha256(data), path))
    index = [
        {"name": i.name, "description": i.description, "sha256": i.sha256, "file": i.path.name}
        for i in infos
        if i.path is not None
    ]
    text = json.dumps(index, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    write_atomic(out_dir / INDEX_FILE, text.encode("utf-8"))
    return infos


def load_library(lib_dir: Path) -> dict[str, TemplateInfo]:
    """Read a library written by build_library, verifying every file's sha256."""
    lib_dir = Path(lib_dir)
    index_path = lib_dir / INDEX_FILE
    try:
        entries = json.loads(index_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateLibraryError(f"template library index not found: {index_path}") from None
    except (OSError, ValueError) as exc:
        raise TemplateLibraryError(f"cannot read template library index {index_path}: {exc}") from exc
    if not isinstance(entries, list):
        raise TemplateLibraryError(f"{index_path}: expected a JSON list of templates")
    library: dict[str, TemplateInfo] = {}
    for entry in entries:
        try:
            name, description = entry["name"], entry["description"]
            sha256, file = entry["sha256"], entry["file"]
        except (KeyError, TypeError):
            raise TemplateLibraryError(f"{index_path}: malformed entry {entry!r}") from None
        if Path(file).name != file:  # plain file names only: stay inside lib_dir
            raise TemplateLibraryError(f"{index_path}: file {file!r} is not a plain name")
        path = lib_dir / file
        try:
            actual = _sha256(path.read_bytes())
        except FileNotFoundError:
            raise TemplateLibraryError(f"template file missing: {path}") from None
        if actual != sha256:
            raise TemplateLibraryError(
                f"template file {path} has sha256 {actual}, index.json expects {sha256}"
            )
        library[name] = TemplateInfo(name, description, sha256, path)
    return library
