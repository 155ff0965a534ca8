"""The canvas window: the few canvas lines a step needs, chosen from the observation alone.

A whole document's canvas costs half of a step prompt (and grows with the document: a user's 200-paragraph
file would not fit at all), while a step needs only the lines it acts on. The window shows, in document order:

- the line(s) holding the selection (`caret in p3`, `text "..." in p3`, `paragraphs p2-p4`, `table t1`);
- the lines that the request or the previous plan names: by quoted text (`'Revenue'`, `"Revenue"`, matched
  ignoring case, also through the `{tags:...}` run markup), by id (`paragraph 3` is the third paragraph,
  `p2` in 0-based ids, so both `p2` and `p3` are shown; `table 2` is `t2`, `comment 1` is `comment1`), or by
  kind (a mention of a header, footer or comment shows those lines);

at most `MAX_LINES` of them (selection first, then ids, then quoted text, then kinds), each cut to its
first `MAX_CHARS` characters plus, where a quoted name lies further on, ` … ` and the name with `CONTEXT`
characters either side (a named phrase is never cut, so the text a request names stays selectable: the
grammar's `select_text` spans come from what the prompt shows). The
other lines are summarised by one line, `omitted_lines(n)`. Every shown line keeps its id (`p12 <...> text`):
`select_paragraph` needs the index.

It is a pure function of the observation's fields, so a stored observation gives the same prompt in training
and at inference, and `lamops.agents.grammar` can rebuild the same canvas from an observation.
"""

from __future__ import annotations

import re

MAX_LINES = 6
MAX_CHARS = 48
CONTEXT = 8  # characters shown either side of a quoted name beyond MAX_CHARS
CUT = " … "  # stands for the characters a shown line leaves out

# A quoted name: an opening quote not inside a word, the shortest text up to a closing quote not followed by a
# word character (so the apostrophe of "company's" neither opens nor closes one).
_QUOTED = re.compile(r"""(?<!\w)['"‘“](.+?)['"’”](?!\w)""")
_PARAGRAPH = re.compile(r"\bparagraphs? (\d+)\b|\bp(\d+)\b", re.IGNORECASE)
_NUMBERED = re.compile(r"\b(table|comment|section) (\d+)\b", re.IGNORECASE)
_KINDS = re.compile(r"\b(header|footer|comment)s?\b", re.IGNORECASE)
_SELECTED_RANGE = re.compile(r"paragraphs p(\d+)-p(\d+)")
_SELECTED_ID = re.compile(r"(?:in|table) ([pt]\d+)(?: at \d+)?$")
_LINE_ID = re.compile(r"^(p\d+|t\d+) |^\[(header|footer|comment|section) (\d+)?")
_MARKUP = re.compile(r"\{[^{}\s]*:|\}")  # the `{b|i:` openers and `}` closers of inline_text


def omitted_lines(n: int) -> str:
    """The line that stands for the `n` canvas lines the window leaves out."""
    return f"[{n} more lines]"


def quoted_names(*texts: str) -> list[str]:
    """The quoted phrases of `texts`, in order, without repeats."""
    return list(
        dict.fromkeys(m.group(1).strip() for t in texts for m in _QUOTED.finditer(t) if m.group(1).strip())
    )


def canvas_window(canvas: str, selection: str, request: str, previous_plan: list[str]) -> str:
    """The canvas lines the window shows, then the count line (see the module docstring)."""
    lines = canvas.split("\n") if canvas else []
    if not lines:
        return ""
    texts = [request, *previous_plan]
    names = quoted_names(*texts)
    ids = [_line_id(line) for line in lines]
    wanted: list[int] = []  # line indices, by priority

    def want(pred) -> None:
        wanted.extend(i for i in range(len(lines)) if i not in wanted and pred(i))

    selected = _selected_ids(selection)
    want(lambda i: ids[i] in selected)
    named = _named_ids(texts)
    want(lambda i: ids[i] in named)
    folded = [n.lower() for n in names]
    want(lambda i: any(n in lines[i].lower() or n in _MARKUP.sub("", lines[i]).lower() for n in folded))
    kinds = {m.group(1).lower() for t in texts for m in _KINDS.finditer(t)}
    want(lambda i: ids[i].rstrip("0123456789") in kinds)
    shown = sorted(wanted[:MAX_LINES])
    out = [_shorten(lines[i], folded) for i in shown]
    if len(lines) > len(shown):
        out.append(omitted_lines(len(lines) - len(shown)))
    return "\n".join(out)


def _line_id(line: str) -> str:
    """`p3`, `t1`, `header`, `comment2`, ... of a canvas line; '' for other lines."""
    m = _LINE_ID.match(line)
    if not m:
        return ""
    return m.group(1) or (m.group(2) + (m.group(3) or ""))


def _selected_ids(selection: str) -> set[str]:
    """The ids `render_selection` names: `caret in p3 at 0`, `text "..." in p3`, `paragraphs p2-p4` (at most
    MAX_LINES of them), `table t1`."""
    m = _SELECTED_RANGE.fullmatch(selection)
    if m:
        lo, hi = sorted((int(m.group(1)), int(m.group(2))))
        return {f"p{k}" for k in range(lo, min(hi, lo + MAX_LINES - 1) + 1)}
    m = _SELECTED_ID.search(selection)
    return {m.group(1)} if m else set()


def _named_ids(texts: list[str]) -> set[str]:
    out: set[str] = set()
    for t in texts:
        unquoted = _QUOTED.sub(" ", t)
        for m in _PARAGRAPH.finditer(unquoted):
            if m.group(1):  # "paragraph 3": the third (p2), or p3 for a 0-based reader
                n = int(m.group(1))
                out.update({f"p{n}", f"p{n - 1}"} if n else {"p0"})
            else:
                out.add(f"p{m.group(2)}")
        for m in _NUMBERED.finditer(unquoted):
            kind, n = m.group(1).lower(), m.group(2)
            out.add(f"t{n}" if kind == "table" else f"{kind}{n}")
    return out


def _shorten(line: str, folded_names: list[str]) -> str:
    """`line` cut to its first MAX_CHARS characters, followed by each quoted name it holds further on (with
    CONTEXT characters either side, cut at `CUT`), so a named phrase is never cut. A line that holds a name
    only through run markup is kept whole."""
    if len(line) <= MAX_CHARS:
        return line
    low = line.lower()
    if any(n not in low and n in _MARKUP.sub("", line).lower() for n in folded_names):
        return line
    spans = sorted((low.find(n), low.find(n) + len(n)) for n in folded_names if n in low)
    pieces, end = [line[:MAX_CHARS]], MAX_CHARS
    for lo, hi in spans:
        lo, hi = max(lo - CONTEXT, 0), min(hi + CONTEXT, len(line))
        if hi <= end:
            continue
        if lo > end:
            pieces.append(CUT)
            end = lo
        pieces.append(line[end:hi])
        end = hi
    return "".join(pieces) + (CUT.rstrip() if end < len(line) else "")
