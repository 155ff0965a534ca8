"""fit_prompt: the canvas goes before the controls, the request or the newest actions."""

from __future__ import annotations

from helpers import CharTokenizer

from lamops.agents.prompt import fit_prompt, omitted


def decode(ids: list[int]) -> str:
    return "".join(chr(i) for i in ids)


PROMPT = (
    "<Available Control Item:>\n1:Bold:Button\n2:Italic:Button\n"
    "<Canvas State:>\n[ui] tab Home\n[selection] caret in p0 at 0\n"
    "p0 <Normal> first paragraph text\np1 <Normal> second paragraph text\n"
    "p2 <Normal> third paragraph, the longest one of them all\n"
    "<User Request:> Make 'first' bold.\n"
    "<Previous Actions:>\n1. Home -> ok: the Home tab is now active and shows its commands\n"
    "2. Bold -> ok: b\n"
    "<Previous Plans:>\n(none)"
)


def test_a_prompt_that_fits_is_unchanged():
    ids, cut = fit_prompt(CharTokenizer(), PROMPT, len(PROMPT))
    assert decode(ids) == PROMPT and cut == 0


def test_the_canvas_loses_lines_from_its_end_first():
    room = len(PROMPT) - len("p2 <Normal> third paragraph, the longest one of them all") + len(omitted(1))
    ids, cut = fit_prompt(CharTokenizer(), PROMPT, room)
    text = decode(ids)
    assert len(ids) <= room and cut == len(PROMPT) - len(ids)
    assert "p1 <Normal> second paragraph text\n" + omitted(2) not in text
    assert "p0 <Normal> first paragraph text\np1 <Normal> second paragraph text\n" + omitted(1) in text
    assert "third" not in text
    for kept in ("1:Bold:Button", "[ui] tab Home", "[selection] caret", "Make 'first' bold.", "2. Bold"):
        assert kept in text


def test_then_the_oldest_actions_go_and_the_newest_stay():
    without_canvas = PROMPT.replace(
        "p0 <Normal> first paragraph text\np1 <Normal> second paragraph text\n"
        "p2 <Normal> third paragraph, the longest one of them all\n",
        omitted(3) + "\n",
    )
    room = len(without_canvas) - 1
    text = decode(fit_prompt(CharTokenizer(), PROMPT, room)[0])
    assert omitted(3) in text and "1. Home" not in text
    assert omitted(1) + "\n2. Bold -> ok: b" in text and "Make 'first' bold." in text


def test_a_prompt_without_sections_loses_its_start():
    ids, cut = fit_prompt(CharTokenizer(), "abcdef", 4)
    assert decode(ids) == "cdef" and cut == 2
    assert fit_prompt(CharTokenizer(), "abc", 0) == ([], 3)
