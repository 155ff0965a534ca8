"""The References tab: table of contents, fields."""

from __future__ import annotations

from docx.oxml import OxmlElement
from docx.oxml.ns import qn


class ReferencesCommands:
    """Mixin of `lamops.env.word.WordEnv` (it holds the state: `live`, `ui`, `_edit`...)."""

    def cmd_toc(self, what: str) -> str:
        live = self.live

        def apply():
            for p in live.body_paragraphs():
                is_toc = any("TOC" in (f.get(qn("w:instr")) or "") for f in p._p.iter(qn("w:fldSimple")))
                if is_toc or (p.style is not None and p.style.name == "TOC Heading"):
                    p._p.getparent().remove(p._p)
            if what == "remove":
                return "removed the table of contents"
            first = live.body_paragraphs()[0]
            heading = first.insert_paragraph_before("Contents", style=live.style("TOC Heading"))
            p = first.insert_paragraph_before()
            fld = OxmlElement("w:fldSimple")
            fld.set(qn("w:instr"), 'TOC \\o "1-3" \\h \\z \\u')
            p._p.append(fld)
            del heading
            return "inserted a table of contents"

        return self._edit(apply)

    def cmd_update_fields(self, _) -> str:
        def apply():
            settings = self.live.doc.settings.element
            if settings.find(qn("w:updateFields")) is None:
                el = OxmlElement("w:updateFields")
                el.set(qn("w:val"), "true")
                settings.append(el)
            return "fields will update when the document opens"

        return self._edit(apply)
