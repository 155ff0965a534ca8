"""The Review tab: comments, track changes."""

from __future__ import annotations

from docx.oxml import OxmlElement
from docx.oxml.ns import qn

from lamops.env.canvas import (
    comment_anchor_text,
)
from lamops.env.commands.base import Refused


class ReviewCommands:
    """Mixin of `lamops.env.word.WordEnv` (it holds the state: `live`, `ui`, `_edit`...)."""

    def cmd_goto_comment(self, delta: str) -> str:
        comments = list(self.live.doc.comments)
        if not comments:
            return "the document has no comments"
        self.comment_cursor = (self.comment_cursor + int(delta)) % len(comments)
        c = comments[self.comment_cursor]
        anchor = comment_anchor_text(self.live.doc, c.comment_id)
        if anchor and self.live.find_text(anchor):
            self.live.select_text(anchor)
        return f"comment {self.comment_cursor + 1} of {len(comments)}: {c.text}"

    def cmd_delete_comment(self, which: str) -> str:
        live = self.live
        comments = list(live.doc.comments)
        if not comments:
            return "the document has no comments"
        if which == "current":
            if self.comment_cursor < 0:
                raise Refused("no comment is selected: use Next Comment first")
            ids = {str(comments[self.comment_cursor].comment_id)}
        else:
            ids = {str(c.comment_id) for c in comments}

        def apply():
            body = live.doc.element.body
            for tag in ("w:commentRangeStart", "w:commentRangeEnd", "w:commentReference"):
                for el in list(body.iter(qn(tag))):
                    if el.get(qn("w:id")) in ids:
                        parent = el.getparent()
                        parent.remove(el)
                        if (
                            tag == "w:commentReference"
                            and parent.tag == qn("w:r")
                            and not len([c for c in parent if c.tag != qn("w:rPr")])
                        ):
                            parent.getparent().remove(parent)
            comments_el = live.doc.part._comments_part.element
            for el in list(comments_el):
                if el.get(qn("w:id")) in ids:
                    comments_el.remove(el)
            self.comment_cursor = -1
            return f"deleted {len(ids)} comment(s)"

        return self._edit(apply)

    def cmd_track_changes(self, _) -> str:
        def apply():
            settings = self.live.doc.settings.element
            el = settings.find(qn("w:trackRevisions"))
            if el is not None:
                settings.remove(el)
                return "track changes off"
            settings.insert(0, OxmlElement("w:trackRevisions"))
            return "track changes on"

        return self._edit(apply)
