"""Families over whole paragraphs: alignment, spacing, indentation, styles and lists."""

from __future__ import annotations

from docx.enum.text import WD_ALIGN_PARAGRAPH

from lamops.env import ribbon
from lamops.env.families.base import Family, Plan, phrasing, pick_paragraph, starts, style_of

_BODY_STYLES = ("Normal", "Body Text")


def _is_body(p) -> bool:
    return style_of(p) in _BODY_STYLES


def _para_scope(params):
    return {f"p{i}" for i in range(params["first"], params.get("last", params["first"]) + 1)}


class _ParagraphFamily(Family):
    def scope(self, params):
        return _para_scope(params)

    def target(self, after, params):
        return after.paragraphs[params["first"]]


class AlignParagraph(_ParagraphFamily):
    name = "align_paragraph"
    category = "paragraph formatting"
    description = "Center, right-align or justify a paragraph."
    _ALIGN = {
        "Center": ("center", WD_ALIGN_PARAGRAPH.CENTER),
        "Align Right": ("right-align", WD_ALIGN_PARAGRAPH.RIGHT),
        "Justify": ("justify", WD_ALIGN_PARAGRAPH.JUSTIFY),
    }

    def sample(self, doc, rng):
        button = rng.choice(sorted(self._ALIGN))
        verb, value = self._ALIGN[button]
        i = pick_paragraph(doc, rng, lambda p: p.alignment is None)
        if i is None:
            return None
        head = starts(doc.paragraphs[i])
        plan = (
            Plan()
            .select_paragraph(i, what=f"the paragraph starting '{head}'")
            .click(button, f"Click {button}.")
        )
        request = phrasing(
            rng,
            [
                "{v} the paragraph that begins '{h}'.",
                "Please {v} the paragraph starting with '{h}'.",
                "The paragraph '{h}...' should be {v}ed.",
            ],
            v=verb,
            h=head,
        )
        request = request[0].upper() + request[1:]
        return plan.spec(request, {"first": i, "align": int(value)})

    def goal(self, before, after, params):
        return {"aligned": self.target(after, params).alignment == params["align"]}


class LineSpacing(_ParagraphFamily):
    name = "line_spacing"
    category = "paragraph formatting"
    description = "Set the line spacing of a paragraph from the Line and Paragraph Spacing menu."

    def sample(self, doc, rng):
        value = rng.choice(["1.5", "2.0", "2.5", "3.0"])
        i = pick_paragraph(doc, rng, lambda p: p.paragraph_format.line_spacing is None)
        if i is None:
            return None
        head = starts(doc.paragraphs[i])
        plan = (
            Plan()
            .select_paragraph(i, what=f"the paragraph starting '{head}'")
            .choose("Line and Paragraph Spacing", value)
        )
        request = phrasing(
            rng,
            [
                "Set the line spacing of the paragraph starting '{h}' to {v}.",
                "Use {v} line spacing for the paragraph that begins '{h}'.",
            ],
            h=head,
            v=value,
        )
        return plan.spec(request, {"first": i, "spacing": float(value)})

    def goal(self, before, after, params):
        ls = self.target(after, params).paragraph_format.line_spacing
        return {"line_spacing": isinstance(ls, float) and abs(ls - params["spacing"]) < 1e-6}


class ParagraphSpacing(_ParagraphFamily):
    name = "paragraph_spacing"
    category = "paragraph formatting"
    description = "Set the space before and after a paragraph in the Paragraph dialog."

    def sample(self, doc, rng):
        before, after = rng.choice([("6", "12"), ("12", "6"), ("18", "6"), ("12", "12"), ("24", "12")])
        i = pick_paragraph(doc, rng, lambda p: p.paragraph_format.space_before is None)
        if i is None:
            return None
        head = starts(doc.paragraphs[i])
        plan = (
            Plan()
            .select_paragraph(i, what=f"the paragraph starting '{head}'")
            .click("Paragraph Settings", "Open the Paragraph dialog.")
            .set_text("Spacing Before", before)
            .set_text("Spacing After", after)
            .click("OK", "Click OK.")
        )
        request = phrasing(
            rng,
            [
                "Give the paragraph starting '{h}' {b} pt of space before and {a} pt after.",
                "Set spacing before to {b} pt and after to {a} pt on the paragraph '{h}...'.",
            ],
            h=head,
            b=before,
            a=after,
        )
        return plan.spec(request, {"first": i, "before": float(before), "after": float(after)})

    def goal(self, before, after, params):
        pf = self.target(after, params).paragraph_format
        return {
            "space_before": pf.space_before is not None and pf.space_before.pt == params["before"],
            "space_after": pf.space_after is not None and pf.space_after.pt == params["after"],
        }


class IndentParagraph(_ParagraphFamily):
    name = "indent_paragraph"
    category = "paragraph formatting"
    description = "Indent a paragraph from the left by an exact amount on the Layout tab."

    def sample(self, doc, rng):
        inches = rng.choice(["0.5", "1", "1.5"])
        i = pick_paragraph(doc, rng, lambda p: not p.paragraph_format.left_indent and _is_body(p))
        if i is None:
            return None
        head = starts(doc.paragraphs[i])
        plan = (
            Plan()
            .select_paragraph(i, what=f"the paragraph starting '{head}'")
            .tab("Layout")
            .set_text("Indent Left", inches)
        )
        request = phrasing(
            rng,
            [
                "Indent the paragraph starting '{h}' by {n} inch from the left.",
                "Set a left indent of {n}\" on the paragraph that begins '{h}'.",
            ],
            h=head,
            n=inches,
        )
        return plan.spec(request, {"first": i, "inches": float(inches)})

    def goal(self, before, after, params):
        ind = self.target(after, params).paragraph_format.left_indent
        return {"left_indent": ind is not None and abs(ind.inches - params["inches"]) < 0.01}


class ApplyStyle(_ParagraphFamily):
    name = "apply_style"
    category = "styles"
    description = "Apply a paragraph style from the Styles gallery, scrolling it when the style is hidden."

    def sample(self, doc, rng):
        style = rng.choice(["Heading 1", "Heading 2", "Title", "Heading 3", "Quote", "Intense Quote"])
        i = pick_paragraph(doc, rng, _is_body)
        if i is None:
            return None
        head = starts(doc.paragraphs[i])
        plan = Plan().select_paragraph(i, what=f"the paragraph starting '{head}'")
        pos = ribbon.STYLE_GALLERY.index(style)
        if pos >= ribbon.GALLERY_WINDOW:
            plan.wheel(ribbon.STYLE_GALLERY[0], -1, "Scroll the Styles gallery down.")
        plan.click(style, f"Click the {style} style.")
        request = phrasing(
            rng,
            [
                "Apply the {s} style to the paragraph starting '{h}'.",
                "Format the paragraph that begins '{h}' as {s}.",
                "Turn '{h}...' into {s}.",
            ],
            s=style,
            h=head,
        )
        return plan.spec(request, {"first": i, "style": style})

    def goal(self, before, after, params):
        return {"style": style_of(self.target(after, params)) == params["style"]}


class StyleFromMenu(_ParagraphFamily):
    name = "style_from_menu"
    category = "styles"
    description = (
        "Apply a less common style (Caption, List Paragraph, Subtitle...) from the More Styles list."
    )

    def sample(self, doc, rng):
        style = rng.choice(["Subtitle", "List Paragraph", "Caption", "No Spacing"])
        i = pick_paragraph(doc, rng, _is_body)
        if i is None:
            return None
        head = starts(doc.paragraphs[i])
        plan = (
            Plan().select_paragraph(i, what=f"the paragraph starting '{head}'").choose("More Styles", style)
        )
        request = phrasing(
            rng,
            ["Use the {s} style for the paragraph starting '{h}'.", "Change the style of '{h}...' to {s}."],
            s=style,
            h=head,
        )
        return plan.spec(request, {"first": i, "style": style})

    goal = ApplyStyle.goal


class TitleParagraph(_ParagraphFamily):
    name = "title_paragraph"
    category = "styles"
    description = "Make the first paragraph a centred Title."

    def sample(self, doc, rng):
        first = doc.paragraphs[0] if doc.paragraphs else None
        if first is None or style_of(first) == "Title" or not first.text.strip():
            return None
        head = starts(first)
        plan = (
            Plan()
            .select_paragraph(0, what="the first paragraph")
            .click("Title", "Click the Title style.")
            .click("Center", "Click Center.")
        )
        request = phrasing(
            rng,
            [
                "Make the first paragraph ('{h}...') a centred title.",
                "Turn the opening line '{h}' into a Title and center it.",
            ],
            h=head,
        )
        return plan.spec(request, {"first": 0})

    def goal(self, before, after, params):
        p = self.target(after, params)
        return {"style": style_of(p) == "Title", "centered": p.alignment == WD_ALIGN_PARAGRAPH.CENTER}


def _runs_of_body(doc, length):
    """(first, last) of a run of `length` consecutive body paragraphs."""
    paras = doc.paragraphs
    out = []
    for i in range(len(paras) - length + 1):
        block = paras[i : i + length]
        if all(_is_body(p) and len(p.text.split()) >= 3 for p in block):
            out.append((i, i + length - 1))
    return out


class MakeList(_ParagraphFamily):
    name = "make_list"
    category = "lists"
    description = "Turn consecutive paragraphs into a bulleted or numbered list."

    def sample(self, doc, rng):
        button, style = rng.choice([("Bullets", "List Bullet"), ("Numbering", "List Number")])
        spans = _runs_of_body(doc, rng.choice([2, 3]))
        if not spans:
            return None
        i, j = rng.choice(spans)
        head = starts(doc.paragraphs[i], 4)
        kind = "bulleted" if button == "Bullets" else "numbered"
        plan = (
            Plan()
            .select_paragraph(i, j, what=f"the {j - i + 1} paragraphs from '{head}'")
            .click(button, f"Click {button}.")
            .click("Increase Indent", "Click Increase Indent.")
        )
        request = phrasing(
            rng,
            [
                "Make an indented {k} list of the {n} paragraphs starting at '{h}'.",
                "Turn the {n} paragraphs from '{h}' on into a {k} list, indented one level.",
            ],
            k=kind,
            n=j - i + 1,
            h=head,
        )
        return plan.spec(request, {"first": i, "last": j, "style": style, "indented": True})

    def goal(self, before, after, params):
        paras = after.paragraphs[params["first"] : params["last"] + 1]
        checks = {"listed": all(style_of(p) == params["style"] for p in paras)}
        if params.get("indented"):
            checks["indented"] = all((p.paragraph_format.left_indent or 0) > 0 for p in paras)
        return checks


class FormatHeading(_ParagraphFamily):
    name = "format_heading"
    category = "styles"
    description = "Turn a paragraph into a centred, coloured Heading 1."

    def sample(self, doc, rng):
        colour = rng.choice(["Dark Blue", "Dark Red", "Green", "Purple"])
        i = pick_paragraph(doc, rng, _is_body, min_words=3)
        if i is None:
            return None
        head = starts(doc.paragraphs[i])
        plan = (
            Plan()
            .select_paragraph(i, what=f"the paragraph starting '{head}'")
            .click("Heading 1", "Click Heading 1.")
            .click("Center", "Click Center.")
            .choose("Font Color", colour)
        )
        request = phrasing(
            rng,
            [
                "Make the paragraph starting '{h}' a centred Heading 1 in {c}.",
                "Format '{h}...' as Heading 1, centred, with {c} text.",
            ],
            h=head,
            c=colour.lower(),
        )
        return plan.spec(request, {"first": i, "rgb": ribbon.FONT_COLORS[colour]})

    def goal(self, before, after, params):
        from docx.shared import RGBColor

        p = self.target(after, params)
        runs = [r for r in p.runs if r.text.strip()]
        return {
            "style": style_of(p) == "Heading 1",
            "centered": p.alignment == WD_ALIGN_PARAGRAPH.CENTER,
            "coloured": bool(runs)
            and all(r.font.color.rgb == RGBColor.from_string(params["rgb"]) for r in runs),
        }


class ConvertList(_ParagraphFamily):
    name = "convert_list"
    category = "lists"
    description = "Switch an existing bulleted list to numbering, or a numbered list to bullets."

    def sample(self, doc, rng):
        paras = doc.paragraphs
        blocks = []
        for style, button in (("List Bullet", "Numbering"), ("List Number", "Bullets")):
            idx = [i for i, p in enumerate(paras) if style_of(p) == style]
            if idx and idx == list(range(idx[0], idx[-1] + 1)):
                blocks.append((idx[0], idx[-1], style, button))
        if not blocks:
            return None
        i, j, style, button = rng.choice(blocks)
        target = "List Number" if button == "Numbering" else "List Bullet"
        old, new = ("bulleted", "numbered") if button == "Numbering" else ("numbered", "bulleted")
        plan = Plan().select_paragraph(i, j, what=f"the {old} list").click(button, f"Click {button}.")
        request = phrasing(
            rng, ["Change the {o} list into a {n} list.", "Make the {o} list {n} instead."], o=old, n=new
        )
        return plan.spec(request, {"first": i, "last": j, "style": target})

    goal = MakeList.goal


FAMILIES = [
    AlignParagraph,
    LineSpacing,
    ParagraphSpacing,
    IndentParagraph,
    ApplyStyle,
    StyleFromMenu,
    TitleParagraph,
    FormatHeading,
    MakeList,
    ConvertList,
]
