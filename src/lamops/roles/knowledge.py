"""The environment's feature knowledge, as an LLM knows the application it writes plans for.

For every task family a `Feature`: how people ask for it (`phrasings`), a generic how-to `plan` that names
the UI's controls exactly (in the forms docs/data-sources.md lists), the controls that plan uses and the words
that give the feature away (`keywords`). All of it is derived from the families' own reference tasks (sampled
on the built-in templates, concrete document text abstracted away) plus a few hand-written ways of asking.

`best_feature` scores a free text against every feature lexically (stemmed words, typo-tolerant, weighted by
how distinctive a word is) and `is_about_app` says whether a text is about this application at all.

The naming tables (what people write instead of the UI's names: other names for controls, keyboard shortcuts,
vague steps, steps that do not exist, the Word 2003 menus) are in `lamops.roles.naming`; the raw-source
generator (`lamops.data.sources`) writes plans with them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache, lru_cache

from lamops.env import ribbon
from lamops.records import InstantiatedTask, PlanStep
from lamops.roles.naming import (
    CHOICE_NOUNS,
    CONTROL_SYNONYMS,
    EXTRA_PHRASINGS,
    FIELD_NOUNS,
    KEY_STEPS,
    OLD_UI,
)

# ---- scoring constants -------------------------------------------------------------------------------------
MIN_SCORE = 18.0  # best_feature returns None below this score (0-100)...
MIN_DISTINCTIVE_IDF = 1.8  # ...and when none of the words it matches is at least this distinctive
SATURATION = 12.0  # a text's matched word weight is scored against at most this much (long texts: plans)
RELEVANT_SCORE = 30.0  # is_about_app: a text that names no app is about it when a feature scores this much
UNKNOWN_WEIGHT = 1.0  # weight of a query word no feature knows (typical known words weigh 1-4)
BIGRAM_WEIGHT = 0.5  # weight of a known pair of adjacent words ("paragraph spacing") relative to a word
MISSING_SIGNATURE = 0.75  # score factor when a text lacks any of a feature's signature words
SIGNATURE_SHARE = 0.75  # a word is a feature's signature when this share of its phrasings hold it...
SIGNATURE_MAX_FAMILIES = 8  # ...and at most this many features know it
REFERENCE_SEEDS = 6  # seeds sampled per family (see reference_tasks)


@dataclass(frozen=True)
class Feature:
    family: str
    category: str
    description: str
    keywords: tuple[str, ...]  # distinctive words, most distinctive first
    phrasings: tuple[str, ...]  # generic ways people ask for it, no document content
    plan: tuple[str, ...]  # generic how-to plan naming the UI's controls exactly
    controls: tuple[str, ...]  # the UI control names the reference plan uses, in order


# ---- reference tasks and what their steps do in the UI -----------------------------------------------------
@cache
def reference_tasks(family: str) -> tuple[InstantiatedTask, ...]:
    """Tasks of `family` sampled with seed 0 on its first applicable template and, when one of the next
    templates applies too (at most two misses later), on that one, then seeds 1..REFERENCE_SEEDS-1 alternating
    between them. Deterministic; the first is the feature's reference plan."""
    from lamops.env.families import sample_task
    from lamops.env.templates import TEMPLATES

    found: list[tuple[str, InstantiatedTask]] = []
    misses = 0
    for name in TEMPLATES:
        task = sample_task(family, name, 0)
        if task is not None:
            found.append((name, task))
        elif found:
            misses += 1
        if len(found) == 2 or misses > 2:
            break
    if not found:
        raise ValueError(f"family {family!r} applies to no built-in template; it needs one to be described")
    templates = [name for name, _ in found]
    out = [task for _, task in found]
    for seed in range(1, REFERENCE_SEEDS):
        task = sample_task(family, templates[seed % len(templates)], seed)
        if task is not None:
            out.append(task)
    return tuple(out)


@dataclass(frozen=True)
class UiStep:
    """One reference plan step as a person describes it: what kind of UI action it is and where."""

    kind: str  # select_text select_paragraph select_table keys type tab open_menu open_dialog menu_item
    # gallery_item scroll field edit check toggle dialog_button button
    control: str = ""  # the control's UI name ('' when the step names none)
    tab: str = ""  # the ribbon tab the control (or the menu's opener) sits on
    opener: str = ""  # menu items: the control that opened the menu; dialog controls: the dialog's title
    container: str = ""  # the ribbon container: "menu:font_color", "gallery:styles", "dialog:font"...
    value: str = ""  # selected or typed text, entered value, keys
    count: int = 1  # select_paragraph: how many paragraphs
    first: bool = False  # select_paragraph: starts at the first paragraph
    off: bool = False  # check boxes: the step clears it


_BY_TEXT: dict[str, tuple[ribbon.Control, ...]] = {}
for _c in ribbon.CONTROLS:
    _BY_TEXT[_c.text] = _BY_TEXT.get(_c.text, ()) + (_c,)
_OPENER = {c.opens: c for c in ribbon.CONTROLS if c.opens}  # "menu:x" / "dialog:x" -> the control opening it
_GALLERY_TAB = {g: after.split("/")[0][4:] for g, after in ribbon.GALLERY_AFTER.items()}
_GALLERY_NAME = {"gallery:styles": "Styles", "gallery:table_styles": "Table Styles"}
_SPECIAL_KEYS = re.compile(r"^[\^+%]*\{[A-Z]+\}$")


def _find_control(name: str, open_: str | None, edit: bool) -> ribbon.Control | None:
    cands = [c for c in _BY_TEXT.get(name, ()) if (c.type in ("Edit", "ComboBox")) == edit] or list(
        _BY_TEXT.get(name, ())
    )
    if not cands:
        return None

    def rank(c: ribbon.Control) -> int:
        if open_ and c.container == open_:
            return 0
        if c.container.startswith("dialog:") or c.container.startswith("menu:"):
            return 4  # a closed menu's or dialog's control cannot be what is meant
        if c.type == "TabItem":
            return 1
        return 2 if c.container.startswith("tab:") else 3

    return min(cands, key=rank)


def _tab_of(c: ribbon.Control) -> str:
    if c.container.startswith("tab:"):
        return c.container[4:]
    if c.container.startswith("gallery:"):
        return _GALLERY_TAB.get(c.container, "")
    opener = _OPENER.get(c.container)
    return _tab_of(opener) if opener is not None and opener.container != c.container else ""


def ui_steps(steps: list[PlanStep]) -> list[UiStep]:
    """What each step of an action plan does in the UI (following which menu or dialog is open)."""
    out: list[UiStep] = []
    open_: str | None = None
    for s in steps:
        a, f = s.args, s.function
        if f == "select_text":
            out.append(UiStep("select_text", value=str(a.get("text", ""))))
        elif f == "select_paragraph":
            i, j = int(a.get("start_index", 0)), int(a.get("end_index", 0))
            out.append(UiStep("select_paragraph", count=j - i + 1, first=i == 0))
        elif f == "select_table":
            out.append(UiStep("select_table", value=str(a.get("number", 1))))
        elif f == "keyboard_input":
            keys = str(a.get("keys", ""))
            out.append(UiStep("keys" if _SPECIAL_KEYS.match(keys) else "type", value=keys))
        elif f == "wheel_mouse_input":
            c = _find_control(s.control_text, open_, edit=False)
            container = c.container if c else ""
            out.append(
                UiStep(
                    "scroll",
                    control=s.control_text,
                    container=container,
                    opener=_GALLERY_NAME.get(container, ""),
                    tab=_tab_of(c) if c else "",
                )
            )
        elif f == "set_edit_text":
            c = _find_control(s.control_text, open_, edit=True)
            in_dialog = c is not None and c.container.startswith("dialog:")
            out.append(
                UiStep(
                    "field" if in_dialog else "edit",
                    control=s.control_text,
                    container=c.container if c else "",
                    opener=ribbon.DIALOG_TITLES.get(c.container[7:], "") if in_dialog else "",
                    tab=_tab_of(c) if c and not in_dialog else "",
                    value=str(a.get("text", "")),
                )
            )
        else:  # click_input
            c = _find_control(s.control_text, open_, edit=False)
            if c is None:
                out.append(UiStep("button", control=s.control_text))
                continue
            kind, opener = "button", ""
            off = s.subtask.lower().startswith(("untick", "clear", "uncheck", "turn off"))
            if c.type == "TabItem":
                kind = "tab"
            elif c.container.startswith("menu:"):
                kind = "menu_item"
                opener = _OPENER[c.container].text if c.container in _OPENER else ""
            elif c.container.startswith("gallery:"):
                kind = "gallery_item"
                opener = _GALLERY_NAME.get(c.container, "")
            elif c.container.startswith("dialog:"):
                kind = "check" if c.type == "CheckBox" else "dialog_button"
                opener = ribbon.DIALOG_TITLES.get(c.container[7:], "")
            elif c.type == "CheckBox":
                kind = "toggle"
            elif c.opens and c.opens.startswith("menu:"):
                kind = "open_menu"
            elif c.opens and c.opens.startswith("dialog:"):
                kind = "open_dialog"
                opener = ribbon.DIALOG_TITLES.get(c.opens[7:], "")
            out.append(
                UiStep(kind, control=c.text, tab=_tab_of(c), opener=opener, container=c.container, off=off)
            )
            if c.opens:
                open_ = c.opens
            elif c.container.startswith("menu:") or (
                c.container.startswith("dialog:") and c.command in ("ok", "cancel")
            ):
                open_ = None
    return out


@cache
def choice_options(family: str) -> dict[str, tuple[str, ...]]:
    """Per menu or gallery container, the items a family's tasks choose between (all the container's items
    that run the same command as an item the reference tasks chose), in UI order; only containers where the
    reference tasks chose more than one item. Cached: do not modify."""
    chosen: dict[str, list[str]] = {}
    for task in reference_tasks(family):
        for u in ui_steps(task.action_plan):
            if u.kind in ("menu_item", "gallery_item") and u.container:
                seen = chosen.setdefault(u.container, [])
                if u.control not in seen:
                    seen.append(u.control)
    out = {}
    for container, items in chosen.items():
        if len(items) < 2:
            continue
        commands = {c.command for c in ribbon.BY_CONTAINER[container] if c.text in items}
        out[container] = tuple(c.text for c in ribbon.BY_CONTAINER[container] if c.command in commands)
    return out


def _options_text(items: tuple[str, ...]) -> str:
    named = [f"**{t}**" for t in items]
    return ", ".join(named[:-1]) + " or " + named[-1] if len(named) > 1 else named[0]


def generic_step(u: UiStep, options: dict[str, tuple[str, ...]], family: str = "") -> str:
    """The step as a generic how-to plan writes it: concrete text abstracted, controls named exactly. A
    choice between several items names them all, so whichever a concrete task needs is named."""
    if u.kind == "select_text":
        return "Select the text you want to change."
    if u.kind == "select_paragraph":
        if u.count > 1:
            return "Select the paragraphs you want to change."
        if u.first and family == "title_paragraph":
            return "Select the first paragraph."
        return "Click in the paragraph you want to change."
    if u.kind == "select_table":
        return "Click anywhere in the table."
    if u.kind == "keys":
        return KEY_STEPS.get(u.value, f"Press {u.value.strip('{}').title()}.")
    if u.kind == "type":
        return "Type the new text."
    if u.kind == "tab":
        return f"Open the **{u.control}** tab."
    if u.kind == "open_menu":
        return f"Open the **{u.control}** {'list' if u.control in ('Font', 'Font Size') else 'menu'}."
    if u.kind in ("menu_item", "gallery_item"):
        items = options.get(u.container)
        if items:
            return f"Choose the {CHOICE_NOUNS.get(u.container, 'option')} you want: {_options_text(items)}."
        return f"Choose **{u.control}**." if u.kind == "menu_item" else f"Click the **{u.control}** style."
    if u.kind == "scroll":
        return f"Scroll down in the {u.opener or 'style'} gallery until the style you want shows."
    if u.kind == "open_dialog":
        return f"Click **{u.control}** to open the {u.opener} dialog."
    if u.kind in ("field", "edit"):
        return f"Type {FIELD_NOUNS.get(u.control, 'the value you want')} in the **{u.control}** box."
    if u.kind in ("check", "toggle"):
        if u.kind == "toggle" and not u.off:
            return f"Click **{u.control}** to turn it on."
        return f"{'Clear' if u.off else 'Select'} the **{u.control}** check box."
    return f"Click **{u.control}**."


# ---- abstracting a concrete request into a generic one -----------------------------------------------------
# Placeholders: {obj} the selected text or paragraph, {objs} several paragraphs, {find} / {repl} the words of
# a replacement, {comment} {header} {footer} {caption} {typed} {link} {other}: the task's own values.
_FIELD_SLOT = {
    "Find what": "find",
    "Replace with": "repl",
    "Comment": "comment",
    "Header Text": "header",
    "Footer Text": "footer",
    "Caption": "caption",
    "Address": "link",
}
_PARAGRAPH_POINTERS = (
    (
        re.compile(
            r"the (?:paragraph|opening line)(?: that| which)? (?:starting|starts|begins|beginning)"
            r"(?: with| at)? \{obj\}"
        ),
        "{obj}",
    ),
    (re.compile(r"the first paragraph \(\{obj\}\)"), "the first paragraph"),
    (re.compile(r"the (?:opening line|first paragraph) \{obj\}"), "the opening line"),
    (re.compile(r"the \d+ paragraphs (?:from|starting at) \{obj\}(?: on)?"), "{objs}"),
    (re.compile(r"(?i:the) (?:paragraph|words|text|phrase) \{obj\}"), "{obj}"),
    (re.compile(r"\btable (?:number )?1\b"), "the table"),
    (re.compile(r"\b(?:the|a) the table\b"), "the table"),
    (re.compile(r"\bthe first table\b"), "the table"),
)
_QUOTED = re.compile(r"'([^']{2,}?)'(?=[\s.,:;!?)]|$)")
_URL = re.compile(r"https?://\S+?(?=[.,;]?(?:\s|$))")


def abstract_request(task: InstantiatedTask) -> str:
    """The task's request with its concrete values as placeholders (see above); document words never stay."""
    slots: list[tuple[str, str]] = []  # (value, slot) longest first
    for s in task.action_plan:
        a = s.args
        if s.function == "select_text":
            slots.append((str(a.get("text", "")), "obj"))
        elif s.function == "set_edit_text" and s.control_text in _FIELD_SLOT:
            slots.append((str(a.get("text", "")), _FIELD_SLOT[s.control_text]))
        elif s.function == "keyboard_input" and not _SPECIAL_KEYS.match(str(a.get("keys", ""))):
            slots.append((str(a.get("keys", "")), "typed"))
        elif s.function == "select_paragraph":
            m = re.search(r"'(.+)'", s.subtask)
            if m:
                slots.append((m.group(1), "obj"))
    controls = {s.control_text for s in task.action_plan if s.control_text}
    text = _URL.sub("{link}", task.request)
    for value, slot in sorted(slots, key=lambda x: -len(x[0])):
        if value:
            text = re.sub(
                r"'" + re.escape(value) + r"(?:\.\.\.)?'|\(?'?" + re.escape(value) + r"\.\.\.'?\)?",
                "{" + slot + "}",
                text,
            )
    has_select = any(s.function.startswith("select_") for s in task.action_plan)

    def leftover(m: re.Match) -> str:
        inner = m.group(1)
        if inner in controls:
            return inner
        if has_select and "{obj}" not in text:
            return "{obj}"
        return "{other}"

    text = _QUOTED.sub(leftover, text)
    for pattern, repl in _PARAGRAPH_POINTERS:
        text = pattern.sub(repl, text)
    return text


def fill(template: str, **values: str) -> str:
    """A template from `abstract_request` with its placeholders filled (missing ones by generic words)."""
    defaults = {
        "obj": "the text",
        "objs": "the paragraphs",
        "find": "'old word'",
        "repl": "'new word'",
        "comment": "'your note'",
        "header": "'your header text'",
        "footer": "'your footer text'",
        "caption": "'your caption'",
        "typed": "'new wording'",
        "link": "a web address",
        "other": "'the comment text'",
    }
    defaults.update(values)
    out = re.sub(r"\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), template)
    out = re.sub(r"\s+([.,:;!?])", r"\1", re.sub(r"\s{2,}", " ", out)).strip()
    return out[:1].upper() + out[1:]


def object_kind(task: InstantiatedTask) -> str:
    """What the task's {obj} is: text, paragraph, paragraphs, table or '' (no object)."""
    for s in task.action_plan:
        if s.function == "select_text":
            return "text"
        if s.function == "select_paragraph":
            n = int(s.args.get("end_index", 0)) - int(s.args.get("start_index", 0)) + 1
            return "paragraphs" if n > 1 else "paragraph"
        if s.function == "select_table":
            return "table"
    return ""


# ---- lexical matching --------------------------------------------------------------------------------------
STOPWORDS = frozenset(
    """a an the to in on of for with and or how do does did i my your you me we our it its this that these
    those is are was be been can could should would will into from by at as about so then than there here
    what which when where who why please want need get way using use step steps also just some any
    word microsoft ms msword office document doc docx file 365 2003 2007 2010 2013 2016 2019 2021 2024
    s t click clicking clicked select selected choose pick open go tab button menu ribbon window drag
    across cursor mouse anywhere somewhere inside next arrow like then first once find look see sure
    there done hit""".split()
)
_SPELLING = {
    "colour": "color",
    "colours": "colors",
    "coloured": "colored",
    "centre": "center",
    "centred": "centered",
    "centring": "centering",
    "emphasise": "emphasize",
    "emphasised": "emphasized",
    "capitalise": "capitalize",
    "italicise": "italicize",
    "italicize": "italic",
    "italicized": "italic",
    "italics": "italic",
    "organise": "organize",
    "grey": "gray",
    "txt": "text",
    "exactly": "exact",
    "pls": "please",
}
_TOKEN = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light, deterministic stemmer: spelling variants unified, plural / -ing / -ed / final e dropped."""
    w = _SPELLING.get(word, word)
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


# Control names whose words would point at the wrong feature: "Close Header and Footer" ends a header-only
# task as well as a footer-only one.
NEUTRAL_NAMES = re.compile(r"close header and footer", re.IGNORECASE)


def words(text: str) -> list[str]:
    """Content words of a text, stemmed, in order (stopwords and NEUTRAL_NAMES dropped)."""
    text = NEUTRAL_NAMES.sub(" ", text)
    return [stem(t) for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


def terms(tokens: list[str]) -> list[str]:
    """Words and pairs of adjacent words ("paragraph_spac"): what features are indexed by."""
    return [*tokens, *(f"{a}_{b}" for a, b in zip(tokens, tokens[1:], strict=False))]


@dataclass(frozen=True)
class _Index:
    features: tuple[Feature, ...]
    idf: dict[str, float]
    postings: dict[str, tuple[tuple[int, float], ...]]
    signature: tuple[tuple[str, ...], ...]
    deletes: dict[str, tuple[str, ...]]
    longest: int  # characters in the longest word of the vocabulary


def _deletes(word: str) -> list[str]:
    return [word[:i] + word[i + 1 :] for i in range(len(word))]


def _feature_documents(family: str) -> list[str]:
    """The texts a feature's vocabulary is learnt from: its phrasings, description and plan, and the other
    names of its controls."""
    from lamops.env.families import get_family

    fam = get_family(family)
    tasks = reference_tasks(family)
    phrasings = _phrasings(family)
    names: list[str] = []
    for u in ui_steps(tasks[0].action_plan):
        if u.control:
            names.extend(CONTROL_SYNONYMS.get(u.control, ()))
            if u.control in OLD_UI:
                names.append(OLD_UI[u.control])
    for items in choice_options(family).values():
        names.extend(items)
    return [*phrasings, fam.description, " ".join(_plan(family)), " ".join(names)]


@cache
def _phrasings(family: str) -> tuple[str, ...]:
    from lamops.env.families import get_family

    out: list[str] = []
    for task in reference_tasks(family):
        kind = object_kind(task)
        obj = {"paragraph": "the paragraph", "paragraphs": "the paragraphs", "table": "the table"}.get(
            kind, "the text"
        )
        out.append(fill(abstract_request(task), obj=obj))
    out.append(get_family(family).description)
    out.extend(EXTRA_PHRASINGS.get(family, ()))
    seen: list[str] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return tuple(seen)


@cache
def _plan(family: str) -> tuple[str, ...]:
    options = choice_options(family)
    return tuple(generic_step(u, options, family) for u in ui_steps(reference_tasks(family)[0].action_plan))


def _controls(family: str) -> tuple[str, ...]:
    return tuple(s.control_text for s in reference_tasks(family)[0].action_plan if s.control_text)


@cache
def _index() -> _Index:
    from lamops.env.families import FAMILIES

    names = list(FAMILIES)
    texts = {f: _feature_documents(f) for f in names}
    docs = {f: [set(terms(words(d))) for d in texts[f]] for f in names}
    vocab: dict[str, set[int]] = {}
    for i, f in enumerate(names):
        for d in docs[f]:
            for t in d:
                vocab.setdefault(t, set()).add(i)
    n = len(names)
    idf = {t: math.log(1 + n / len(fs)) for t, fs in sorted(vocab.items())}
    postings: dict[str, list[tuple[int, float]]] = {}
    signature: list[tuple[str, ...]] = []
    features: list[Feature] = []
    for i, f in enumerate(names):
        fdocs = docs[f]
        share = {t: sum(t in d for d in fdocs) / len(fdocs) for t in sorted(set().union(*fdocs))}
        for t, frac in share.items():
            postings.setdefault(t, []).append((i, idf[t] * (0.4 + 0.6 * frac)))
        phr = [set(words(p)) for p in _phrasings(f)]
        sig = tuple(
            t
            for t in sorted(share)
            if sum(t in p for p in phr) / len(phr) >= SIGNATURE_SHARE
            and len(vocab[t]) <= SIGNATURE_MAX_FAMILIES
        )
        signature.append(sig)
        fam = FAMILIES[f]
        features.append(
            Feature(
                family=f,
                category=fam.category,
                description=fam.description,
                keywords=_keywords(texts[f], share, idf),
                phrasings=_phrasings(f),
                plan=_plan(f),
                controls=_controls(f),
            )
        )
    deletes: dict[str, list[str]] = {}
    for t in sorted(vocab):
        if len(t) >= 4 and "_" not in t:
            for d in [t, *_deletes(t)]:
                deletes.setdefault(d, []).append(t)
    return _Index(
        features=tuple(features),
        idf=idf,
        postings={t: tuple(p) for t, p in postings.items()},
        signature=tuple(signature),
        deletes={d: tuple(ts) for d, ts in deletes.items()},
        longest=max(map(len, idf), default=0),
    )


def _keywords(
    texts: list[str], share: dict[str, float], idf: dict[str, float], k: int = 8
) -> tuple[str, ...]:
    """A feature's most distinctive words, each in the surface form its texts use most."""
    surface: dict[str, dict[str, int]] = {}
    for d in texts:
        for t in _TOKEN.findall(d.lower()):
            if t not in STOPWORDS and len(t) > 1:
                forms = surface.setdefault(stem(t), {})
                forms[t] = forms.get(t, 0) + 1
    ranked = sorted((t for t in share if t in surface), key=lambda t: (-share[t] * idf[t] ** 2, t))
    return tuple(max(sorted(surface[t]), key=lambda w: surface[t][w]) for t in ranked[:k])


def features() -> dict[str, Feature]:
    """Every family's Feature, in FAMILIES order (built once per process, deterministic)."""
    return {f.family: f for f in _index().features}


def _one_edit(a: str, b: str) -> bool:
    """Whether b is one insertion, deletion, swap of adjacent letters or (words of 6+ letters) substitution
    away from a: "yelow" -> "yellow", but not "bread" -> "break"."""
    if abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        swap = a[i : i + 2] == b[i : i + 2][::-1] and a[i + 2 :] == b[i + 2 :]
        return swap or (len(a) >= 6 and a[i + 1 :] == b[i + 1 :])
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    return longer[i + 1 :] == shorter[i:]


@lru_cache(maxsize=131072)
def _correct(token: str) -> str | None:
    """A known word one edit (insert, delete, substitute, swap) from an unknown one, or None."""
    ix = _index()
    if token in ix.idf:
        return token
    if len(token) < 5 or len(token) > ix.longest + 1:  # one edit changes the length by one at most; and
        return None  # the deletes of a long token are quadratic in its length
    cands: set[str] = set()
    for d in [token, *_deletes(token)]:
        cands.update(t for t in ix.deletes.get(d, ()) if _one_edit(token, t))
    return min(cands, key=lambda t: (-ix.idf[t], t)) if cands else None


def score_features(text: str) -> list[tuple[Feature, float]]:
    """Every feature the text scores above zero for, best first (ties in FAMILIES order).

    A feature's score is the share of the text's word weight (idf; a long text's weight counts up to
    SATURATION) it matches, its own weight for each word growing with how many of its texts hold it, times
    MISSING_SIGNATURE when a signature word is absent."""
    ix = _index()
    tokens: list[str] = []
    unknown: set[str] = set()
    for raw in words(text):
        t = _correct(raw)
        if t is None:
            unknown.add(raw)
        else:
            tokens.append(t)
    total = UNKNOWN_WEIGHT * len(unknown)
    present = dict.fromkeys(tokens)
    acc: dict[int, float] = {}
    distinctive = 0.0
    for t in present:
        total += ix.idf[t]
        distinctive = max(distinctive, ix.idf[t])
        for i, w in ix.postings[t]:
            acc[i] = acc.get(i, 0.0) + w
    if not acc or distinctive < MIN_DISTINCTIVE_IDF:
        return []
    for b in dict.fromkeys(terms(tokens)[len(tokens) :]):
        if b in ix.idf:
            total += BIGRAM_WEIGHT * ix.idf[b]
            for i, w in ix.postings[b]:
                acc[i] = acc.get(i, 0.0) + BIGRAM_WEIGHT * w
    out = []
    scale = min(total, SATURATION)
    for i, matched in acc.items():
        score = 100.0 * matched / scale
        if any(s not in present for s in ix.signature[i]):
            score *= MISSING_SIGNATURE
        out.append((i, score))
    out.sort(key=lambda x: (-x[1], x[0]))  # ranked unclamped: a long text can exceed 100 for several
    return [(ix.features[i], round(min(s, 100.0), 3)) for i, s in out]


def best_feature(text: str) -> tuple[Feature, float] | None:
    """The feature a free text (title, request, query, plan) is most about and its lexical relevance (0-100);
    None when the text is about a phone or another application (`other_app`), matches only common words, or
    no feature reaches MIN_SCORE."""
    if other_app(text) is not None:
        return None
    ranked = score_features(text)
    if not ranked or ranked[0][1] < MIN_SCORE:
        return None
    return ranked[0]


_PLATFORM = re.compile(
    r"\b(?:android|iphone|ipad|ios|smartphones?|phones?|tablets?|mobile|chromebook|apple watch)\b", re.I
)
_OTHER_APP = re.compile(
    r"\b(?:excel|powerpoint|google (?:docs|sheets|slides|drive)|libre ?office|open ?office|wps|wordpad|"
    r"notepad|onenote|outlook|gmail|apple pages|pages (?:app|on mac)|keynote|notes app|apple notes|canva|"
    r"photoshop)\b",
    re.I,
)
_WORD_APP = re.compile(
    r"\b(?:microsoft word|ms[- ]?word|msword|winword|word (?:docs?|documents?|files?|20\d\d|365|online|"
    r"for (?:windows|mac))|(?:in|into|to|from|with|using) word)\b|\.docx?\b",
    re.I,
)


def other_app(text: str) -> str | None:
    """The phone platform or other application a text is about instead of this one, or None."""
    m = _PLATFORM.search(text)
    if m:
        return m.group(0)
    m = _OTHER_APP.search(text)
    if m and not _WORD_APP.search(text):
        return m.group(0)
    return None


def is_about_app(text: str) -> bool:
    """Whether a text is about this application (Word on a computer): not about a phone or another app, and
    either naming Word or about one of its features."""
    if other_app(text) is not None:
        return False
    if _WORD_APP.search(text):
        return True
    found = best_feature(text)
    return found is not None and found[1] >= RELEVANT_SCORE
