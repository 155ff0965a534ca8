"""Valid but unusual packages a user's .docx may be, found in other projects' test documents: each is read, or
refused in one line that names what it is, and no result that fails to reopen is ever written.

Each document is built here from python-docx's default document with zip edits."""

from __future__ import annotations

import io
import zipfile

import docx
import pytest
from docx.oxml.ns import qn

from lamops.env.canvas import render_canvas
from lamops.env.document import LiveDocument
from lamops.env.user_docx import UserDocumentError, inspect_document, read_document, save_document

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
OFFICE_DOCUMENT_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"


def plain_docx(text: str = "Hello there") -> bytes:
    d = docx.Document()
    d.add_paragraph(text)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def rezip(data: bytes, edit: dict, rename: dict | None = None) -> bytes:
    """A copy of a .docx zip with `edit[name](text)` applied to entries and entries renamed by `rename`."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            content = src.read(name)
            if name in edit:
                content = edit[name](content.decode()).encode()
            dst.writestr((rename or {}).get(name, name), content)
    return out.getvalue()


def refusal(tmp_path, data: bytes) -> str:
    path = tmp_path / "in.docx"
    path.write_bytes(data)
    with pytest.raises(UserDocumentError) as err:
        inspect_document(read_document(path), str(path))
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


def test_a_table_without_tblpr_is_shown():
    d = docx.Document()
    table = d.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "left"
    table._tbl.remove(table._tbl.find(qn("w:tblPr")))
    buf = io.BytesIO()
    d.save(buf)
    inspect_document(buf.getvalue(), "no-tblpr.docx")
    live = LiveDocument(buf.getvalue())
    assert "left" in render_canvas(live)
    assert live.tables()[0].style.name == "Normal Table"  # python-docx's accessors need a tblPr


def test_the_main_part_is_found_through_the_package_relationships(tmp_path):
    data = rezip(
        plain_docx("Found me"),
        edit={
            "_rels/.rels": lambda t: t.replace("word/document.xml", "word/document22.xml"),
            "[Content_Types].xml": lambda t: t.replace("/word/document.xml", "/word/document22.xml"),
        },
        rename={
            "word/document.xml": "word/document22.xml",
            "word/_rels/document.xml.rels": "word/_rels/document22.xml.rels",
        },
    )
    path = tmp_path / "in.docx"
    path.write_bytes(data)
    inspect_document(read_document(path), str(path))
    assert "Found me" in render_canvas(LiveDocument(data))


def test_a_document_using_doctype_entities_is_refused(tmp_path):
    def declare(text: str) -> str:
        head, body = text.split("?>", 1)
        return (
            head + '?><!DOCTYPE w:document [<!ENTITY co "Acme">]>' + body.replace("Hello", "&co; says hello")
        )

    message = refusal(tmp_path, rezip(plain_docx(), edit={"word/document.xml": declare}))
    assert "uses the XML entity &co; declared in a DOCTYPE" in message


def test_a_result_that_does_not_reopen_is_never_written(tmp_path):
    broken = rezip(plain_docx(), edit={"word/document.xml": lambda t: t.replace("Hello", "&co; hello")})
    out = tmp_path / "out.docx"
    with pytest.raises(UserDocumentError, match="does not reopen as a .docx.*nothing was written"):
        save_document(broken, out, overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_a_password_protected_docx_is_named(tmp_path):
    ole = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "EncryptedPackage".encode("utf-16-le") + bytes(64)
    )
    assert "a password-protected (encrypted) .docx" in refusal(tmp_path, ole)


def test_a_strict_open_xml_document_is_named(tmp_path):
    strict = "http://purl.oclc.org/ooxml/"
    data = rezip(
        plain_docx(),
        edit={
            "_rels/.rels": lambda t: t.replace(
                OFFICE_DOCUMENT_REL, strict + "officeDocument/relationships/officeDocument"
            ),
            "word/document.xml": lambda t: t.replace(W_NS, strict + "wordprocessingml/main"),
        },
    )
    assert "a Strict Open XML document" in refusal(tmp_path, data)
