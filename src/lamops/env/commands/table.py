"""The Table Design and Table Layout tabs: table commands act on the selected table."""

from __future__ import annotations

import copy

from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.table import Table

from lamops.env.commands.base import Refused


class TableCommands:
    """Mixin of `lamops.env.word.WordEnv` (it holds the state: `live`, `ui`, `_edit`...)."""

    def _table(self) -> Table:
        sel = self.live.selection
        if sel.kind != "table":
            raise Refused("no table is selected")
        return Table(sel.table, self.live.doc._body)

    def cmd_table_style(self, name: str) -> str:
        table = self._table()

        def apply():
            table.style = self.live.style(name)
            return f"table style {name}"

        return self._edit(apply)

    def cmd_table_look(self, attr: str) -> str:
        table = self._table()

        def apply():
            tblPr = table._tbl.tblPr
            look = tblPr.find(qn("w:tblLook"))
            if look is None:
                look = OxmlElement("w:tblLook")
                tblPr.append(look)
            on = look.get(qn(f"w:{attr}")) in ("1", "true")
            look.set(qn(f"w:{attr}"), "0" if on else "1")
            return f"{attr} {'off' if on else 'on'}"

        return self._edit(apply)

    def cmd_table_insert(self, where: str) -> str:
        table = self._table()

        def apply():
            if where in ("above", "below"):
                template = table.rows[0 if where == "above" else -1]._tr
                new = _blank_copy(template)
                (template.addprevious if where == "above" else template.addnext)(new)
                return f"inserted a row {where}"
            grid = table._tbl.tblGrid
            cols = grid.findall(qn("w:gridCol"))
            ref_col = cols[0 if where == "left" else -1]
            new_col = _blank_copy(ref_col)
            (ref_col.addprevious if where == "left" else ref_col.addnext)(new_col)
            for tr in table._tbl.tr_lst:
                tcs = tr.tc_lst
                ref = tcs[0 if where == "left" else -1]
                (ref.addprevious if where == "left" else ref.addnext)(_blank_copy(ref))
            return f"inserted a column to the {where}"

        return self._edit(apply)

    def cmd_table_delete(self, what: str) -> str:
        table = self._table()
        live = self.live

        def apply():
            if what == "table":
                return live.delete_selection()
            if what == "last_row":
                if len(table.rows) == 1:
                    return live.delete_selection()
                tr = table.rows[-1]._tr
                tr.getparent().remove(tr)
                return "deleted the last row"
            if len(table.columns) == 1:
                return live.delete_selection()
            grid = table._tbl.tblGrid
            grid.remove(grid.findall(qn("w:gridCol"))[-1])
            for tr in table._tbl.tr_lst:
                tr.remove(tr.tc_lst[-1])
            return "deleted the last column"

        return self._edit(apply)

    def cmd_autofit(self, mode: str) -> str:
        table = self._table()

        def apply():
            table.autofit = mode != "fixed"
            return f"autofit {mode}"

        return self._edit(apply)


def _blank_copy(el):
    """A copy of a table row, cell or grid column with its text removed."""
    new = copy.deepcopy(el)
    for t in new.iter(qn("w:t")):
        t.text = ""
    return new
