"""Families over a span of text: character formatting, case, editing, find and replace, links, comments."""

from __future__ import annotations

import re

from docx.enum.text import WD_COLOR_INDEX
from docx.shared import RGBColor

from lamops.env import ribbon
from lamops.env.canvas import comment_anchor_text, run_format
from lamops.env.families.base import (
    Family,
    Plan,
    find,
    full_text,
    phrase_runs,
    phrasing,
    pick_phrase,
    pick_word,
    scope_of_phrase,
)

_FLAGS = {"bold": "Bold", "italic": "Italic", "underline": "Underline"}


def _plain(runs, prop):
    return bool(runs) and not any(getattr(r.font, prop) for r in runs)


def _all(runs, prop, value=True):
    return bool(runs) and all(getattr(r.font, prop) == value for r in runs)


class _PhraseFamily(Family):
    """A family acting on one phrase: the scope is the paragraph (or table) that holds it."""

    in_tables = False

    def scope(self, params):
        return scope_of_phrase(params.get("paragraph"), params.get("tables", 0))

    @staticmethod
    def params(doc, phrase: str, paragraph: int | None, **extra) -> dict:
        """Goal parameters: the phrase, where it is (for the scope) and the family's own values."""
        return {"phrase": phrase, **extra, "paragraph": paragraph, "tables": len(doc.tables)}

    def _pick(self, doc, rng, ok):
        picked = pick_phrase(doc, rng, ok, in_tables=self.in_tables)
        if picked is None:
            return None, None
        return picked


class EmphasizePhrase(_PhraseFamily):
    name = "emphasize_phrase"
    category = "character formatting"
    description = "Make a phrase bold, italic and/or underlined with the Home tab buttons."

    def sample(self, doc, rng):
        combo = rng.choice(
            [
                ("bold", "italic"),
                ("bold", "underline"),
                ("italic", "underline"),
                ("bold", "italic", "underline"),
            ]
        )
        phrase, idx = self._pick(doc, rng, lambda runs: all(_plain(runs, p) for p in combo))
        if phrase is None:
            return None
        words = " and ".join(combo)
        plan = Plan().select_text(phrase)
        for prop in combo:
            plan.click(_FLAGS[prop], f"Click {_FLAGS[prop]} on the Home tab.")
        request = phrasing(
            rng,
            ["Make '{p}' {w}.", "Format the words '{p}' as {w}.", "Please set '{p}' in {w} type."],
            p=phrase,
            w=words,
        )
        return plan.spec(request, self.params(doc, phrase, idx, props=list(combo)))

    def goal(self, before, after, params):
        runs = phrase_runs(after, params["phrase"])
        return {f"phrase_{p}": _all(runs, p) for p in params["props"]}


class HighlightPhrase(_PhraseFamily):
    name = "highlight_phrase"
    category = "character formatting"
    description = "Highlight a phrase in a colour from the Text Highlight Color menu."
    in_tables = True

    def sample(self, doc, rng):
        colour = rng.choice([c for c in ribbon.HIGHLIGHTS if ribbon.HIGHLIGHTS[c]])
        phrase, idx = self._pick(doc, rng, lambda runs: all(r.font.highlight_color is None for r in runs))
        if phrase is None:
            return None
        plan = Plan().select_text(phrase).choose("Text Highlight Color", colour)
        request = phrasing(
            rng,
            [
                "Highlight '{p}' in {c}.",
                "Use a {c} highlight on '{p}'.",
                "Mark the text '{p}' with {c} highlighting.",
            ],
            p=phrase,
            c=colour.lower(),
        )
        return plan.spec(
            request,
            self.params(doc, phrase, idx, colour=ribbon.HIGHLIGHTS[colour]),
        )

    def goal(self, before, after, params):
        want = getattr(WD_COLOR_INDEX, params["colour"])
        return {"phrase_highlighted": _all(phrase_runs(after, params["phrase"]), "highlight_color", want)}


class ColorPhrase(_PhraseFamily):
    name = "color_phrase"
    category = "character formatting"
    description = "Change the font colour of a phrase from the Font Color menu."

    def sample(self, doc, rng):
        colour = rng.choice([c for c in ribbon.FONT_COLORS if ribbon.FONT_COLORS[c] not in (None, "000000")])
        phrase, idx = self._pick(doc, rng, lambda runs: all(r.font.color.rgb is None for r in runs))
        if phrase is None:
            return None
        plan = Plan().select_text(phrase).choose("Font Color", colour)
        request = phrasing(
            rng,
            [
                "Change the colour of '{p}' to {c}.",
                "Make the text '{p}' {c}.",
                "Set the font color of '{p}' to {c}.",
            ],
            p=phrase,
            c=colour.lower(),
        )
        return plan.spec(
            request,
            self.params(doc, phrase, idx, rgb=ribbon.FONT_COLORS[colour]),
        )

    def goal(self, before, after, params):
        runs = phrase_runs(after, params["phrase"])
        want = RGBColor.from_string(params["rgb"])
        return {"phrase_coloured": bool(runs) and all(r.font.color.rgb == want for r in runs)}


class SizePhrase(_PhraseFamily):
    name = "size_phrase"
    category = "character formatting"
    description = "Set the font size of a phrase from the Font Size list."

    def sample(self, doc, rng):
        size = rng.choice(["14", "16", "18", "20", "24"])
        phrase, idx = self._pick(doc, rng, lambda runs: all(r.font.size is None for r in runs))
        if phrase is None:
            return None
        plan = Plan().select_text(phrase).choose("Font Size", size)
        request = phrasing(
            rng,
            ["Make '{p}' {s} pt.", "Set the font size of '{p}' to {s}.", "Enlarge '{p}' to {s} points."],
            p=phrase,
            s=size,
        )
        return plan.spec(request, self.params(doc, phrase, idx, size=float(size)))

    def goal(self, before, after, params):
        runs = phrase_runs(after, params["phrase"])
        return {
            "phrase_size": bool(runs)
            and all(r.font.size is not None and r.font.size.pt == params["size"] for r in runs)
        }


class SizePhraseDialog(_PhraseFamily):
    name = "size_phrase_dialog"
    category = "character formatting"
    description = "Set an exact font size that is not in the list, through the Font dialog."

    def sample(self, doc, rng):
        size = rng.choice(["13", "15", "17", "19", "22"])
        phrase, idx = self._pick(doc, rng, lambda runs: all(r.font.size is None for r in runs))
        if phrase is None:
            return None
        plan = (
            Plan()
            .select_text(phrase)
            .click("Font Settings", "Open the Font dialog.")
            .set_text("Size", size)
            .click("OK", "Click OK.")
        )
        request = phrasing(
            rng,
            ["Set '{p}' to exactly {s} pt using the Font dialog.", "Give '{p}' a font size of {s} points."],
            p=phrase,
            s=size,
        )
        return plan.spec(request, self.params(doc, phrase, idx, size=float(size)))

    goal = SizePhrase.goal


class FontEffectPhrase(_PhraseFamily):
    name = "font_effect_phrase"
    category = "character formatting"
    description = "Apply a font effect (strikethrough, superscript, small caps...) from the Font dialog."

    def sample(self, doc, rng):
        effect = rng.choice(sorted(ribbon.FONT_EFFECTS))
        prop = ribbon.FONT_EFFECTS[effect]
        phrase, idx = self._pick(doc, rng, lambda runs: _plain(runs, prop))
        if phrase is None:
            return None
        plan = (
            Plan()
            .select_text(phrase)
            .click("Font Settings", "Open the Font dialog.")
            .click(effect, f"Tick {effect}.")
            .click("OK", "Click OK.")
        )
        request = phrasing(
            rng,
            [
                "Apply {e} to '{p}'.",
                "Format '{p}' with the {e} effect.",
                "Use the Font dialog to give '{p}' {e}.",
            ],
            p=phrase,
            e=effect.lower(),
        )
        return plan.spec(request, self.params(doc, phrase, idx, prop=prop))

    def goal(self, before, after, params):
        return {f"phrase_{params['prop']}": _all(phrase_runs(after, params["phrase"]), params["prop"])}


class FontNamePhrase(_PhraseFamily):
    name = "font_name_phrase"
    category = "character formatting"
    description = "Change the typeface of a phrase from the Font list."

    def sample(self, doc, rng):
        font = rng.choice(ribbon.FONT_NAMES)
        phrase, idx = self._pick(doc, rng, lambda runs: all(r.font.name is None for r in runs))
        if phrase is None:
            return None
        plan = Plan().select_text(phrase).choose("Font", font)
        request = phrasing(
            rng,
            ["Put '{p}' in {f}.", "Change the font of '{p}' to {f}.", "Use the {f} typeface for '{p}'."],
            p=phrase,
            f=font,
        )
        return plan.spec(request, self.params(doc, phrase, idx, font=font))

    def goal(self, before, after, params):
        runs = phrase_runs(after, params["phrase"])
        return {"phrase_font": bool(runs) and all(r.font.name == params["font"] for r in runs)}


class ChangeCasePhrase(_PhraseFamily):
    name = "change_case_phrase"
    category = "character formatting"
    description = "Change a phrase to UPPERCASE or lowercase with the Change Case menu."
    text_preserving = False

    def sample(self, doc, rng):
        case = rng.choice(["UPPERCASE", "lowercase"])
        conv = str.upper if case == "UPPERCASE" else str.lower
        text = full_text(doc)
        # The new text must differ, and not already occur (the goal finds the phrase by its first occurrence).
        picked = pick_phrase(doc, rng, phrase_ok=lambda p: conv(p) != p and conv(p) not in text)
        if picked is None:
            return None
        phrase, idx = picked
        plan = Plan().select_text(phrase).choose("Change Case", case)
        request = phrasing(
            rng,
            ["Change '{p}' to {c}.", "Convert the text '{p}' to {c}.", "Rewrite '{p}' in {c} letters."],
            p=phrase,
            c=case,
        )
        return plan.spec(request, self.params(doc, phrase, idx, target=conv(phrase)))

    def goal(self, before, after, params):
        expected = full_text(before).replace(params["phrase"], params["target"], 1)
        return {"case_changed": full_text(after) == expected}


class ClearFormattingPhrase(_PhraseFamily):
    name = "clear_formatting_phrase"
    category = "character formatting"
    description = "Remove all direct formatting from a formatted phrase with Clear All Formatting."

    def sample(self, doc, rng):
        phrase, idx = self._pick(doc, rng, lambda runs: bool(runs) and all(run_format(r) for r in runs))
        if phrase is None:
            return None
        plan = Plan().select_text(phrase).click("Clear All Formatting", "Click Clear All Formatting.")
        request = phrasing(
            rng,
            [
                "Remove the formatting from '{p}'.",
                "Make '{p}' plain text again.",
                "Clear all formatting on '{p}'.",
            ],
            p=phrase,
        )
        return plan.spec(request, self.params(doc, phrase, idx))

    def goal(self, before, after, params):
        runs = phrase_runs(after, params["phrase"])
        return {"phrase_plain": bool(runs) and not any(run_format(r) for r in runs)}


class RetypePhrase(_PhraseFamily):
    name = "retype_phrase"
    category = "editing"
    description = "Replace one phrase by typing new text over it."
    text_preserving = False
    _NEW = ["to be confirmed", "next quarter", "the revised figure", "our partners", "as planned"]

    def sample(self, doc, rng):
        picked = pick_phrase(doc, rng, words=(2, 3))
        if picked is None:
            return None
        phrase, idx = picked
        new = rng.choice([n for n in self._NEW if n not in full_text(doc)])
        plan = Plan().select_text(phrase).keys(new, f"Type {new!r} over it.")
        request = phrasing(
            rng,
            [
                "Change '{p}' to '{n}'.",
                "Replace the words '{p}' with '{n}'.",
                "Edit the text so that '{p}' reads '{n}'.",
            ],
            p=phrase,
            n=new,
        )
        return plan.spec(request, self.params(doc, phrase, idx, new=new))

    def goal(self, before, after, params):
        expected = full_text(before).replace(params["phrase"], params["new"], 1)
        return {"text_replaced": full_text(after) == expected}


class DeletePhrase(_PhraseFamily):
    name = "delete_phrase"
    category = "editing"
    description = "Delete a phrase."
    text_preserving = False

    def sample(self, doc, rng):
        picked = pick_phrase(doc, rng, words=(2, 4))
        if picked is None:
            return None
        phrase, idx = picked
        plan = Plan().select_text(phrase).keys("{DELETE}", "Press Delete.")
        request = phrasing(
            rng,
            ["Delete the words '{p}'.", "Remove '{p}' from the document.", "Cut out the phrase '{p}'."],
            p=phrase,
        )
        return plan.spec(request, self.params(doc, phrase, idx))

    def goal(self, before, after, params):
        expected = full_text(before).replace(params["phrase"], "", 1)
        return {"phrase_deleted": full_text(after) == expected}


class ReplaceAll(Family):
    name = "replace_all"
    category = "find and replace"
    description = "Replace every occurrence of a word with the Find and Replace dialog."
    text_preserving = False
    _NEW = ["alpha", "sigma", "omega", "delta", "kappa"]

    def sample(self, doc, rng):
        word = pick_word(doc, rng)
        if word is None:
            return None
        new = rng.choice([w for w in self._NEW if w not in full_text(doc).lower()])
        plan = (
            Plan()
            .click("Replace", "Open Find and Replace from the Home tab.")
            .set_text("Find what", word)
            .set_text("Replace with", new)
            .click("Replace All", "Click Replace All.")
            .click("Close", "Close the dialog.")
        )
        request = phrasing(
            rng,
            [
                "Replace every '{w}' with '{n}'.",
                "Change all occurrences of '{w}' to '{n}'.",
                "Use Find and Replace to swap '{w}' for '{n}' throughout.",
            ],
            w=word,
            n=new,
        )
        return plan.spec(request, {"word": word, "new": new})

    def goal(self, before, after, params):
        expected = re.sub(rf"\b{params['word']}\b", params["new"], full_text(before), flags=re.IGNORECASE)
        return {"all_replaced": full_text(after) == expected}


class ReplaceMatchCase(Family):
    name = "replace_match_case"
    category = "find and replace"
    description = "Replace a capitalised word only where its case matches, with Match case ticked."
    text_preserving = False

    def sample(self, doc, rng):
        text = full_text(doc)
        words = sorted(
            {
                m.group(0)
                for m in re.finditer(r"\b[A-Z][a-z]{4,}\b", text)
                if len(re.findall(rf"\b{m.group(0)}\b", text)) <= 3
                # not inside a longer word, where Replace All (whole words unticked) would also replace it
                and not re.search(rf"{m.group(0)}[A-Za-z]|[A-Za-z]{m.group(0)}", text)
            }
        )
        if not words:
            return None
        word = rng.choice(words)
        new = rng.choice(["Northgate", "Summit", "Horizon", "Keystone"])
        plan = (
            Plan()
            .click("Replace", "Open Find and Replace from the Home tab.")
            .set_text("Find what", word)
            .set_text("Replace with", new)
            .click("Match case", "Tick Match case.")
            .click("Replace All", "Click Replace All.")
            .click("Close", "Close the dialog.")
        )
        request = phrasing(
            rng,
            ["Replace '{w}' with '{n}', matching case.", "Change every '{w}' (exact case) to '{n}'."],
            w=word,
            n=new,
        )
        return plan.spec(request, {"word": word, "new": new})

    def goal(self, before, after, params):
        expected = re.sub(rf"\b{params['word']}\b", params["new"], full_text(before))
        return {"all_replaced": full_text(after) == expected}


class HighlightAndBold(_PhraseFamily):
    name = "highlight_and_bold"
    category = "character formatting"
    description = "Make a phrase stand out: bold and highlighted."

    def sample(self, doc, rng):
        colour = rng.choice(["Yellow", "Bright Green", "Turquoise", "Pink"])
        phrase, idx = self._pick(
            doc, rng, lambda runs: _plain(runs, "bold") and all(r.font.highlight_color is None for r in runs)
        )
        if phrase is None:
            return None
        plan = Plan().select_text(phrase).click("Bold", "Click Bold.").choose("Text Highlight Color", colour)
        request = phrasing(
            rng,
            ["Make '{p}' bold and highlight it in {c}.", "Emphasise '{p}': bold, with a {c} highlight."],
            p=phrase,
            c=colour.lower(),
        )
        return plan.spec(
            request,
            self.params(doc, phrase, idx, colour=ribbon.HIGHLIGHTS[colour]),
        )

    def goal(self, before, after, params):
        runs = phrase_runs(after, params["phrase"])
        return {
            "phrase_bold": _all(runs, "bold"),
            "phrase_highlighted": _all(runs, "highlight_color", getattr(WD_COLOR_INDEX, params["colour"])),
        }


class HyperlinkPhrase(_PhraseFamily):
    name = "hyperlink_phrase"
    category = "insert"
    description = "Turn a phrase into a hyperlink with Insert > Link."
    _URLS = ["https://example.com/report", "https://intranet.example.org/policy", "https://example.net/faq"]

    def sample(self, doc, rng):
        phrase, idx = self._pick(doc, rng, lambda runs: True)
        if phrase is None:
            return None
        url = rng.choice(self._URLS)
        plan = (
            Plan()
            .select_text(phrase)
            .tab("Insert")
            .click("Link", "Click Link.")
            .set_text("Address", url)
            .click("OK", "Click OK.")
        )
        request = phrasing(
            rng,
            ["Link '{p}' to {u}.", "Add a hyperlink on '{p}' pointing to {u}.", "Make '{p}' a link to {u}."],
            p=phrase,
            u=url,
        )
        return plan.spec(request, self.params(doc, phrase, idx, url=url))

    def goal(self, before, after, params):
        found = find(after, params["phrase"])
        ok = False
        if found:
            p, i = found
            pos = 0
            for item in p.iter_inner_content():
                n = len(item.text)
                if hasattr(item, "address") and pos <= i and i + len(params["phrase"]) <= pos + n:
                    ok = item.address == params["url"]
                pos += n
        return {"phrase_linked": ok}


class CommentPhrase(_PhraseFamily):
    name = "comment_phrase"
    category = "review"
    description = "Attach a review comment to a phrase."
    _NOTES = ["Please verify this.", "Source needed here.", "Can we shorten this?", "Check with legal."]

    def scope(self, params):
        return None  # adding a comment adds a comment line and anchors in the paragraph

    def sample(self, doc, rng):
        phrase, idx = self._pick(doc, rng, lambda runs: True)
        if phrase is None:
            return None
        note = rng.choice(self._NOTES)
        plan = (
            Plan()
            .select_text(phrase)
            .tab("Review")
            .click("New Comment", "Click New Comment.")
            .set_text("Comment", note)
            .click("Post", "Post the comment.")
        )
        request = phrasing(
            rng,
            [
                "Add the comment '{n}' on '{p}'.",
                "Comment on '{p}': '{n}'",
                "Attach a review note saying '{n}' to the words '{p}'.",
            ],
            p=phrase,
            n=note,
        )
        return plan.spec(request, {"phrase": phrase, "note": note, "count": len(list(doc.comments))})

    def goal(self, before, after, params):
        comments = list(after.comments)
        new = [c for c in comments if c.text == params["note"]]
        anchored = any(params["phrase"] in comment_anchor_text(after, c.comment_id) for c in new)
        return {
            "comment_added": len(comments) == params["count"] + 1 and bool(new),
            "comment_anchored": anchored,
        }


class HighlightAndComment(CommentPhrase):
    name = "highlight_and_comment"
    category = "review"
    description = "Highlight a phrase and attach a review comment to it."

    def sample(self, doc, rng):
        spec = super().sample(doc, rng)
        if spec is None or any(
            r.font.highlight_color is not None for r in phrase_runs(doc, spec.params["phrase"])
        ):
            return None
        phrase, note = spec.params["phrase"], spec.params["note"]
        plan = (
            Plan()
            .select_text(phrase)
            .choose("Text Highlight Color", "Yellow")
            .tab("Review")
            .click("New Comment", "Click New Comment.")
            .set_text("Comment", note)
            .click("Post", "Post the comment.")
        )
        request = phrasing(
            rng,
            [
                "Highlight '{p}' in yellow and comment '{n}' on it.",
                "Flag '{p}' for review: yellow highlight plus the comment '{n}'",
            ],
            p=phrase,
            n=note,
        )
        return plan.spec(request, spec.params)

    def goal(self, before, after, params):
        highlighted = _all(phrase_runs(after, params["phrase"]), "highlight_color", WD_COLOR_INDEX.YELLOW)
        return {**super().goal(before, after, params), "phrase_highlighted": highlighted}


FAMILIES = [
    EmphasizePhrase,
    HighlightPhrase,
    ColorPhrase,
    SizePhrase,
    SizePhraseDialog,
    FontEffectPhrase,
    FontNamePhrase,
    ChangeCasePhrase,
    ClearFormattingPhrase,
    RetypePhrase,
    DeletePhrase,
    ReplaceAll,
    ReplaceMatchCase,
    HighlightAndBold,
    HyperlinkPhrase,
    CommentPhrase,
    HighlightAndComment,
]
