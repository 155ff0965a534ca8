"""The Insert tab: pages and breaks, header and footer, page numbers, symbols."""

from __future__ import annotations

from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn


class InsertCommands:
    """Mixin of `lamops.env.word.WordEnv` (it holds the state: `live`, `ui`, `_edit`...)."""

    def cmd_blank_page(self, _) -> str:
        def apply():
            self.live.insert_page_break()
            self.live.insert_page_break()
            return "inserted a blank page"

        return self._edit(apply)

    def cmd_page_break(self, _) -> str:
        return self._edit(self.live.insert_page_break)

    def cmd_remove_hf(self, which: str) -> str:
        def apply():
            for s in self.live.doc.sections:
                part = getattr(s, which)
                for p in part.paragraphs:
                    for child in [c for c in p._p if c.tag != qn("w:pPr")]:
                        p._p.remove(child)
            return f"removed the {which}"

        return self._edit(apply)

    def cmd_page_number(self, where: str) -> str:
        def apply():
            for s in self.live.doc.sections:
                for part in (s.header, s.footer):
                    for fld in [
                        f
                        for p in part.paragraphs
                        for f in p._p.iter(qn("w:fldSimple"))
                        if "PAGE" in (f.get(qn("w:instr")) or "")
                    ]:
                        fld.getparent().remove(fld)
                if where == "remove":
                    continue
                part = s.header if where == "header" else s.footer
                p = part.add_paragraph()
                p.alignment = WD_ALIGN_PARAGRAPH.CENTER
                fld = OxmlElement("w:fldSimple")
                fld.set(qn("w:instr"), "PAGE")
                r = OxmlElement("w:r")
                t = OxmlElement("w:t")
                t.text = "1"
                r.append(t)
                fld.append(r)
                p._p.append(fld)
            return "removed page numbers" if where == "remove" else f"page numbers in the {where}"

        return self._edit(apply)

    def cmd_type_symbol(self, symbol: str) -> str:
        return self._edit(lambda: self.live.type_text(symbol))
