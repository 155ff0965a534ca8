"""The `sources` stage's generator: the built-in application's raw corpus, written the way people write.

`write_corpus` writes documentation pages (`docs/*.md`), how-to articles (`howto/*.jsonl`) and search queries
(`queries/*.txt`) in the formats of docs/data-sources.md, deterministically: the same arguments give the same
bytes in any process (every item draws from its own `random.Random` seeded by a string; nothing iterates a set
or calls `hash()`).

Each doc section and article is one task family's reference task (`lamops.roles.knowledge.reference_tasks`)
told in words: the document's own text becomes a generic object ("the title", "a paragraph"), the steps name
the UI's controls in the forms collect recognises (`**Bold**`, `'Bold'`, `Home > Bold`, `Bold button`), in
many phrasings. Like real writers, some plans are defective (rates below): a vague step, a control under
another name or a shortcut, a plan for the Word 2003 menus, a step missing or one too many. Around them is the
noise collect must remove (rates below), each item counted in the returned dict: other languages, exact and
near duplicates, other apps and phones, too short, too long, HTML remnants; and tasks that are about Word but
that the filter stage rejects: subjective requests, tasks involving other applications, tasks that depend on
the environment."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from lamops.data.source_tables import (
    APP_NAMES,
    CONTEXTS,
    DOC_HEADING_FRAMES,
    FIND_REPLACE,
    GROUP_FORMS,
    INTROS,
    KEY_FORMS,
    MATCH_CASE_PAIRS,
    OBJECTS,
    OLD_UI_CLOSE,
    OLD_UI_FORMS,
    OTHER_CONTENT,
    OTHER_NAME_FORMS,
    OTHER_QUERIES,
    OUTROS,
    QUERY_FRAMES,
    QUERY_SLOTS,
    RAMBLE,
    RIBBON_GROUPS,
    SHORTCUT_FORMS,
    SMALL_WORDS,
    STEP_FORMS,
    TIPS,
    TITLE_FRAMES,
    TOO_LONG_QUERIES,
    TOO_SHORT_QUERIES,
    VALUES,
)
from lamops.records import InstantiatedTask
from lamops.roles import knowledge as kn
from lamops.roles import naming

# ---- rates -------------------------------------------------------------------------------------------------
# Plan defects, per clean doc section or article. With ~3 control steps a plan, about a third of the plans
# have at least one (the returned counts say exactly how many).
VAGUE_STEP_RATE = 0.07  # per control step: says what to do, not where ("Use the formatting options")
OTHER_NAME_RATE = 0.08  # per control step with another name: a synonym ("Font Colour") or a shortcut
OLD_UI_RATE = 0.05  # per plan: written for the Word 2003 menus ("Format > Font...")
MISSING_STEP_RATE = 0.055  # per plan: one step (not the first) left out
EXTRA_STEP_RATE = 0.05  # per plan: a step for a control this UI does not have
# Harmless variety, not defects.
CHOICE_LIST_RATE = 0.45  # a menu choice written as "the colour you want, such as **Red**, **Blue**..."
CHOICE_LIST_MAX = 5  # items such a list names at most (the task's own among them)
GROUP_RATE = 0.3  # a ribbon step says which group the control is in ("in the Font group")
MENU_PATH_RATE = 0.2  # tab, menu and item written as one path step "Layout > Orientation > Landscape"
INTRO_RATE = 0.12  # "Open your document in Word." before the steps
OUTRO_RATE = 0.1  # "Click **Save** to keep the change." after them
TIP_RATE = 0.08  # a step ends with a tip ("You can also press Ctrl+B.")

NOISE_TYPES = (
    "non_english",
    "duplicate",
    "near_duplicate",
    "irrelevant",
    "too_short",
    "too_long",
    "non_task",
    "app_involve",
    "env",
)
# Per item, by kind; the rest is clean. HTML remnants are drawn on top, for docs (per page) and articles.
NOISE_RATES: dict[str, dict[str, float]] = {
    "doc": {
        "non_english": 0.03,
        "duplicate": 0.03,
        "near_duplicate": 0.02,
        "irrelevant": 0.02,
        "too_short": 0.02,
        "too_long": 0.015,
        "non_task": 0.015,
        "app_involve": 0.015,
        "env": 0.015,
    },
    "howto": {
        "non_english": 0.035,
        "duplicate": 0.03,
        "near_duplicate": 0.03,
        "irrelevant": 0.035,
        "too_short": 0.025,
        "too_long": 0.02,
        "non_task": 0.02,
        "app_involve": 0.02,
        "env": 0.02,
    },
    "query": {
        "non_english": 0.03,
        "duplicate": 0.04,
        "near_duplicate": 0.03,
        "irrelevant": 0.035,
        "too_short": 0.02,
        "too_long": 0.01,
        "non_task": 0.02,
        "app_involve": 0.02,
        "env": 0.02,
    },
}
HTML_PAGE_RATE = 0.06  # docs pages converted badly: <p>, <br/>, &nbsp;, <span class=...> left in
HTML_ARTICLE_RATE = 0.04
OLD_UI_PAGE_RATE = 0.04  # docs pages from the Word 2003 documentation: every section uses the old menus
PROSE_SECTION_RATE = 0.05  # doc sections with no step list (overview, notes): collect skips them

ARTICLES_PER_FILE = 500
QUERIES_PER_FILE = 2000
SECTIONS_PER_PAGE = (4, 20)


# ---- records -----------------------------------------------------------------------------------------------
@dataclass
class Entry:
    """One generated item: a doc section, an article or a query (a query has a title only)."""

    kind: str  # doc, howto, query
    title: str
    steps: list[str] = field(default_factory=list)
    family: str | None = None  # the family it describes (None for noise about something else)
    noise: str | None = None  # one of NOISE_TYPES, None when clean
    defects: tuple[str, ...] = ()  # vague, other_name, old_ui, missing_step, extra_step
    html: bool = False
    context: str = ""  # doc sections: the prose before the list; articles: the summary
    url: str = ""
    id: str = ""


@dataclass
class DocPage:
    name: str
    title: str
    intro: str
    sections: list[Entry]
    list_marker: str  # "1.", "1)", "-", "*"
    html: bool = False


@dataclass
class Corpus:
    pages: list[DocPage]
    articles: list[Entry]
    queries: list[Entry]
    counts: dict[str, int]


# ---- small text helpers ------------------------------------------------------------------------------------
def title_case(text: str) -> str:
    """wikiHow-style Title Case: small words stay lower, words with capitals or digits stay as written."""
    out = []
    for k, w in enumerate(text.split(" ")):
        if k and w.lower() in SMALL_WORDS:
            out.append(w.lower())
        elif w[:1].islower() and w.isalpha():
            out.append(w[:1].upper() + w[1:])
        else:
            out.append(w)
    return " ".join(out)


def _lower_first(text: str) -> str:
    """'Make the title bold' -> 'make the title bold' (kept when the first word is a name or a code)."""
    first = text.split(" ", 1)[0]
    return text if first[1:2].isupper() or not first.isalpha() else text[:1].lower() + text[1:]


def _starts_with_verb(task: str) -> bool:
    """Whether "How to <task>" reads: not for "At the end of the document, put..." or "Please set..."."""
    return task.split(" ", 1)[0].lower() not in ("at", "the", "in", "on", "please", "a", "an", "for")


def _key(title: str, steps: list[str]) -> str:
    """What collect's exact-duplicate check compares: lowercase words, the framing words dropped."""
    drop = {"how", "to", "do", "i", "can", "in", "word", "microsoft", "ms", "a", "the"}
    words = re.findall(r"[a-z0-9]+", " ".join([title, *steps]).lower())
    return " ".join(w for w in words if w not in drop)


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap
    if kind == 1:
        return word[:i] + word[i + 1 :]  # drop
    return word[:i] + word[i] + word[i:]  # double


def _options_text(rng: random.Random, items: tuple[str, ...], chosen: str) -> str:
    """Up to CHOICE_LIST_MAX of a menu's items (the chosen one always among them), in menu order."""
    if len(items) > CHOICE_LIST_MAX:
        others = [t for t in items if t != chosen]
        keep = {chosen, *rng.sample(others, CHOICE_LIST_MAX - 1)}
        items = tuple(t for t in items if t in keep)
    named = [f"**{t}**" if rng.random() < 0.7 else f"'{t}'" for t in items]
    return ", ".join(named[:-1]) + " or " + named[-1]


def _html(rng: random.Random, text: str, is_step: bool) -> str:
    """A line as a bad HTML-to-Markdown conversion leaves it."""
    kind = rng.randrange(4)
    if kind == 0:
        return f"<p>{text}</p>"
    if kind == 1:
        return text.replace(" ", "&nbsp;", 1 + rng.randrange(2))
    if kind == 2 and is_step:
        return text + "<br/>"
    return f'<span class="{rng.choice(("uicontrol", "step", "ms-text"))}">{text}</span>'


# ---- the generator -----------------------------------------------------------------------------------------
class _Generator:
    def __init__(self, seed: int):
        from lamops.env.families import FAMILIES

        self.seed = seed
        self.families = list(FAMILIES)
        self.features = kn.features()
        self.clean_keys: set[str] = set()
        self.done: dict[str, list[Entry]] = {"doc": [], "howto": [], "query": []}  # clean items so far

    def rng(self, *parts: object) -> random.Random:
        return random.Random("/".join(map(str, (self.seed, *parts))))

    # -- one task told in words --------------------------------------------------------------------------
    def task_entry(
        self, rng: random.Random, kind: str, family: str | None = None, old_ui: bool | None = None
    ) -> Entry:
        """A clean doc section or article about one family (distinct from every earlier clean one)."""
        for _ in range(8):
            entry = self._task_entry(rng, kind, family or rng.choice(self.families), old_ui)
            key = _key(entry.title, entry.steps)
            if key not in self.clean_keys:
                break
        self.clean_keys.add(key)
        return entry

    def _task_entry(self, rng: random.Random, kind: str, family: str, old_ui: bool | None) -> Entry:
        task = rng.choice(kn.reference_tasks(family))
        obj_kind = kn.object_kind(task)
        obj = rng.choice(OBJECTS[obj_kind]) if obj_kind else ""
        if family == "title_paragraph":
            obj = "the first paragraph"
        find, repl = rng.choice(MATCH_CASE_PAIRS if family == "replace_match_case" else FIND_REPLACE)
        values = {k: rng.choice(v) for k, v in VALUES.items()}
        title_values = {
            "obj": obj or "the text",
            "objs": obj or "the paragraphs",
            "find": f"'{find}'",
            "repl": f"'{repl}'",
            "link": rng.choice(("a website", "a web page", "our site", "a URL")),
            **{k: f"'{values[k]}'" for k in ("comment", "header", "footer", "caption", "typed")},
            "other": f"'{values['comment']}'",
        }
        task_text = self._task_text(rng, family, task, title_values)
        ui = kn.ui_steps(task.action_plan)
        options = kn.choice_options(family)
        if old_ui is None:
            old_ui = rng.random() < OLD_UI_RATE
        steps, defects = self._steps(rng, ui, options, obj, find, repl, values, old_ui)
        if rng.random() < MISSING_STEP_RATE:
            named = [i for i, s in enumerate(steps) if i > 0 and kn.words(s)]
            if len(steps) > 2 and named:
                del steps[rng.choice(named)]
                defects.append("missing_step")
        if rng.random() < EXTRA_STEP_RATE:
            steps.insert(rng.randrange(1, len(steps) + 1), rng.choice(naming.EXTRA_STEPS))
            defects.append("extra_step")
        if rng.random() < INTRO_RATE:
            steps.insert(0, rng.choice(INTROS))
        if rng.random() < OUTRO_RATE or len(steps) < 2:
            steps.append(rng.choice(OUTROS))
        if kind == "doc":
            title = rng.choice(DOC_HEADING_FRAMES).format(t=_lower_first(task_text), T=task_text)
            contexts = CONTEXTS if _starts_with_verb(task_text) else CONTEXTS[2:]
            context = rng.choice(contexts).format(t=_lower_first(task_text).rstrip(".?"))
            if rng.random() < 0.3:
                context = self.features[family].description
        else:
            frames = TITLE_FRAMES if _starts_with_verb(task_text) else [f for f in TITLE_FRAMES if "{T}" in f]
            frame = rng.choice(frames)
            t = _lower_first(task_text)
            title = frame.format(t=t, T=task_text)
            if rng.random() < 0.45:
                title = title_case(title)
            context = ""
            if rng.random() < 0.3:
                context = rng.choice(
                    ("Learn how to {t}.", "This guide shows how to {t}.", "{T} quickly.")
                ).format(t=t, T=task_text)
        return Entry(
            kind=kind,
            title=title,
            steps=steps,
            family=family,
            defects=tuple(dict.fromkeys(defects)),
            context=context,
        )

    def _task_text(
        self, rng: random.Random, family: str, task: InstantiatedTask, values: dict[str, str]
    ) -> str:
        """The task in words: the sample's request made generic, or a generic phrasing of the feature."""
        r = rng.random()
        if r < 0.7:
            text = kn.fill(kn.abstract_request(task), **values)
        elif r < 0.9:
            text = rng.choice(naming.EXTRA_PHRASINGS.get(family, ()) or self.features[family].phrasings)
        else:
            text = self.features[family].description
        text = re.sub(r"\s+in (?:MS |Microsoft )?Word$", "", text.strip().rstrip("."))
        return text[:1].upper() + text[1:]

    def _steps(
        self,
        rng: random.Random,
        ui: list[kn.UiStep],
        options: dict[str, tuple[str, ...]],
        obj: str,
        find: str,
        repl: str,
        values: dict[str, str],
        old_ui: bool,
    ) -> tuple[list[str], list[str]]:
        steps: list[str] = []
        old_ui = old_ui and any(
            u.kind == "tab" or u.control in naming.OLD_UI for u in ui
        )  # else it reads the same
        defects: list[str] = ["old_ui"] if old_ui else []
        k = 0
        while k < len(ui):
            u = ui[k]
            # A tab, a menu and its item as one path (all exact names, starting with capitals).
            if (
                not old_ui
                and u.kind == "tab"
                and k + 2 < len(ui)
                and ui[k + 1].kind == "open_menu"
                and ui[k + 2].kind == "menu_item"
                and ui[k + 2].container not in options
                and all(x.control[:1].isupper() for x in ui[k : k + 3])
                and rng.random() < MENU_PATH_RATE
            ):
                path = " > ".join(x.control for x in ui[k : k + 3])
                step = rng.choice(("Go to {p}.", "Click {p}.", "Select {p}.")).format(p=path)
                steps.append(step.replace("....", "..."))
                k += 3
                continue
            text, defect = self._step(rng, u, options, obj, find, repl, values, old_ui)
            if text:
                text = re.sub(r"([.?!]['\"]|\.\.\.)\.$", r"\1", text)  # no "'Done.'." or "Font...."
                group = RIBBON_GROUPS.get(u.control) if u.container.startswith("tab:") else None
                if group and not defect and not old_ui and rng.random() < GROUP_RATE:
                    text = text[:-1] + rng.choice(GROUP_FORMS).format(g=group)
                if rng.random() < TIP_RATE and not defect:
                    shortcut = naming.SHORTCUTS.get(u.control)
                    text += f" You can also press {shortcut}." if shortcut else rng.choice(TIPS)
                steps.append(text)
            if defect:
                defects.append(defect)
            k += 1
        if old_ui and any("..." in naming.OLD_UI.get(u.control, "") for u in ui):
            if not any("OK" in s for s in steps):
                steps.append(rng.choice(OLD_UI_CLOSE))
        return steps, defects

    def _step(
        self,
        rng: random.Random,
        u: kn.UiStep,
        options: dict[str, tuple[str, ...]],
        obj: str,
        find: str,
        repl: str,
        values: dict[str, str],
        old_ui: bool,
    ) -> tuple[str, str | None]:
        """One step's text and the defect it carries (None when it names its control exactly)."""
        c, tab = u.control, u.tab or "Home"
        if u.kind.startswith("select_"):
            form = u.kind if u.kind != "select_paragraph" or u.count == 1 else "select_paragraphs"
            return rng.choice(STEP_FORMS[form]).format(o=obj or "the text"), None
        if u.kind == "keys":
            return rng.choice(KEY_FORMS.get(u.value, (f"Press {u.value.strip('{}').title()}.",))), None
        if u.kind == "type":
            return rng.choice(STEP_FORMS["type"]).format(v=f"'{values['typed']}'"), None
        if old_ui:
            if u.kind == "tab":
                return "", None  # there were no tabs
            if c in naming.OLD_UI:
                return rng.choice(OLD_UI_FORMS).format(p=naming.OLD_UI[c]), None
        r = rng.random()
        if r < VAGUE_STEP_RATE:
            group = {"open_list": "open_menu", "gallery_item": "menu_item", "edit": "field", "check": "field"}
            vague = naming.VAGUE_STEPS.get(group.get(u.kind, u.kind), naming.VAGUE_STEPS["button"])
            return rng.choice(vague), "vague"
        if r < VAGUE_STEP_RATE + OTHER_NAME_RATE:
            other = self._other_name(rng, c)
            if other:
                return other, "other_name"
        if (
            u.kind in ("menu_item", "gallery_item")
            and u.container in options
            and rng.random() < CHOICE_LIST_RATE
        ):
            noun = naming.CHOICE_NOUNS.get(u.container, "option")
            form = rng.choice(STEP_FORMS["choice_list"])
            return form.format(noun=noun, opts=_options_text(rng, options[u.container], c)), None
        if u.kind in ("field", "edit"):
            return rng.choice(STEP_FORMS["field"]).format(c=c, v=self._value(u, find, repl, values)), None
        kind = u.kind
        if kind == "open_menu" and c in ("Font", "Font Size"):
            kind = "open_list"
        elif kind in ("check", "toggle") and u.off:
            kind = "uncheck"
        elif kind == "check":
            kind = "check"
        forms = STEP_FORMS.get(kind, STEP_FORMS["button"])
        if not c[:1].isupper():  # "lowercase", "1.5", "©": only the bold or quoted forms name it
            forms = tuple(f for f in forms if "**{c}**" in f or "'{c}'" in f or '"{c}"' in f)
        return rng.choice(forms).format(c=c, tab=tab, d=u.opener or "Styles"), None

    @staticmethod
    def _other_name(rng: random.Random, control: str) -> str | None:
        names = naming.CONTROL_SYNONYMS.get(control, ())
        shortcut = naming.SHORTCUTS.get(control)
        if shortcut and (not names or rng.random() < 0.3):
            return rng.choice(SHORTCUT_FORMS).format(k=shortcut)
        if not names:
            return None
        name = rng.choice(names)
        if name.startswith("the "):
            return rng.choice(("Click {n}.", "Use {n}.", "Find {n} and click it.")).format(n=name)
        return rng.choice(OTHER_NAME_FORMS).format(n=name)

    @staticmethod
    def _value(u: kn.UiStep, find: str, repl: str, values: dict[str, str]) -> str:
        if re.fullmatch(r"\d+(?:\.\d+)?", u.value):
            unit = {"Spacing Before": " pt", "Spacing After": " pt", "Size": " pt"}.get(u.control, "")
            return u.value + unit
        slot = {
            "Find what": find,
            "Replace with": repl,
            "Comment": values["comment"],
            "Header Text": values["header"],
            "Footer Text": values["footer"],
            "Caption": values["caption"],
            "Address": values["link"],
        }.get(u.control, u.value)
        return f"'{slot}'"

    # -- noise -----------------------------------------------------------------------------------------------
    def noise_entry(self, rng: random.Random, kind: str, noise: str) -> Entry:
        done = self.done[kind]
        if noise in ("duplicate", "near_duplicate") and done:
            src = rng.choice(done)
            if noise == "duplicate":
                return Entry(kind, src.title, list(src.steps), src.family, noise, context=src.context)
            title, steps = self._near_duplicate(rng, src.title, src.steps)
            return Entry(kind, title, steps, src.family, noise, context=src.context)
        if noise in OTHER_CONTENT:
            title, steps = rng.choice(OTHER_CONTENT[noise])
            steps = list(steps)
            if noise != "non_english" and rng.random() < 0.5:
                title = title_case(title) if rng.random() < 0.5 else title[:1] + title[1:].lower()
            if kind == "doc":
                title = re.sub(r"^(?:How to|Cómo|Comment|So) ", "", title)
                title = title[:1].upper() + title[1:]
            return Entry(kind, title, steps, None, noise)
        if noise == "too_short":
            family = rng.choice(self.families)
            feature = self.features[family]
            title = rng.choice((feature.keywords[0], f"{feature.keywords[0]} {feature.keywords[1]}", "Word"))
            ui = [u for u in kn.ui_steps(kn.reference_tasks(family)[0].action_plan) if u.control]
            step = f"Click **{ui[-1].control}**." if ui else "Do it."
            return Entry(kind, title[:1].upper() + title[1:], [step], family, noise)
        if noise == "too_long":
            base = self.task_entry(rng, kind)
            self.clean_keys.discard(_key(base.title, base.steps))
            steps: list[str] = []
            for s in base.steps:
                steps.append(s + " " + rng.choice(RAMBLE))
                steps.append(rng.choice(RAMBLE))
            while len(steps) < 18 or sum(map(len, steps)) < 2500:
                steps.insert(rng.randrange(len(steps) + 1), rng.choice(RAMBLE))
            return Entry(kind, base.title, steps, base.family, noise)
        # duplicate without an earlier item to copy: a clean one instead
        return self.task_entry(rng, kind)

    @staticmethod
    def _near_duplicate(rng: random.Random, title: str, steps: list[str]) -> tuple[str, list[str]]:
        """Case, punctuation or one word changed: the same words to a deduplicator."""
        kind = rng.randrange(3)
        if kind == 0:
            title = title.lower() if title != title.lower() else title_case(title)
        elif kind == 1:
            steps = [s.rstrip(".") if s.endswith(".") else s + "." for s in steps]
            title = title.rstrip("?") if title.endswith("?") else title + "?"
        else:
            swaps = (("Click", "Select"), ("Choose", "Pick"), ("Open", "Go to"), ("Select", "Choose"))
            long = max(range(len(steps)), key=lambda i: len(steps[i]))
            for a, b in swaps:
                if (
                    steps[long].startswith(a + " ")
                    and len(title.split()) + sum(len(s.split()) for s in steps) >= 45
                ):
                    steps = [*steps[:long], b + steps[long][len(a) :], *steps[long + 1 :]]
                    break
            else:
                title = title.upper() if rng.random() < 0.3 else title.replace(" ", "  ", 1)
        return title, steps

    def pick_noise(self, rng: random.Random, kind: str) -> str | None:
        r = rng.random()
        for noise in NOISE_TYPES:
            r -= NOISE_RATES[kind][noise]
            if r < 0:
                return noise
        return None

    def entry(self, rng: random.Random, kind: str, old_ui: bool | None = None) -> Entry:
        noise = self.pick_noise(rng, kind)
        if noise is None:
            entry = self.task_entry(rng, kind, old_ui=old_ui)
        else:
            entry = self.noise_entry(rng, kind, noise)
        if entry.noise is None:
            self.done[kind].append(entry)
        return entry

    # -- queries ---------------------------------------------------------------------------------------------
    def query(self, rng: random.Random) -> Entry:
        noise = self.pick_noise(rng, "query")
        done = self.done["query"]
        if noise in ("duplicate", "near_duplicate") and done:
            src = rng.choice(done).title
            if noise == "near_duplicate":
                src = rng.choice((src.upper(), src.title(), src + "?", src.replace(" ", "  ", 1), src + " ."))
            return Entry("query", src, family=None, noise=noise)
        if noise in OTHER_QUERIES:
            return Entry("query", rng.choice(OTHER_QUERIES[noise]), noise=noise)
        if noise == "too_short":
            return Entry("query", rng.choice(TOO_SHORT_QUERIES), noise=noise)
        if noise == "too_long":
            return Entry("query", rng.choice(TOO_LONG_QUERIES), noise=noise)
        for _ in range(8):
            family = rng.choice(self.families)
            text = self._query_text(rng, family)
            key = " ".join(re.findall(r"[a-z0-9]+", text.lower()))
            if key not in self.clean_keys:
                break
        self.clean_keys.add(key)
        entry = Entry("query", text, family=family)
        done.append(entry)
        return entry

    def _query_text(self, rng: random.Random, family: str) -> str:
        feature = self.features[family]
        r = rng.random()
        if r < 0.45:
            task = rng.choice(kn.reference_tasks(family))
            obj = {"text": "text", "paragraph": "paragraph", "paragraphs": "paragraphs", "table": "table"}
            q = kn.fill(kn.abstract_request(task), obj=obj.get(kn.object_kind(task), "text"), **QUERY_SLOTS)
        elif r < 0.8:
            q = rng.choice(feature.phrasings)
        else:
            words = [w for w in feature.keywords[:6] if not w.isdigit()]
            rng.shuffle(words)
            q = " ".join(words[: rng.randint(2, 3)])
        q = re.sub(r"'([^']*)'", r"\1", q)  # queries rarely quote
        words = re.findall(r"[A-Za-z0-9%x.+-]+", q)
        if rng.random() < 0.85:
            words = [w.lower() for w in words]
        if rng.random() < 0.5:
            words = [w for w in words if w.lower() not in ("the", "a", "an", "please", "of")]
        subs = {"text": "txt", "document": "doc", "and": "&", "with": "w/"}
        words = [subs[w] if w in subs and rng.random() < 0.25 else w for w in words]
        if words and rng.random() < 0.3:
            i = rng.randrange(len(words))
            words[i] = _typo(rng, words[i])
        q = " ".join(w.strip(".") for w in words).strip()
        frame = rng.choice(QUERY_FRAMES)
        q = frame.format(q=q, app=rng.choice(APP_NAMES))
        if rng.random() < 0.08:
            q += "?"
        return q

    # -- docs pages ------------------------------------------------------------------------------------------
    def page(self, p: int) -> DocPage:
        rng = self.rng("docs", p)
        categories = sorted({self.features[f].category for f in self.families})
        mixed = rng.random() < 0.3
        category = rng.choice(categories)
        pool = self.families if mixed else [f for f in self.families if self.features[f].category == category]
        old_ui = rng.random() < OLD_UI_PAGE_RATE
        html = rng.random() < HTML_PAGE_RATE
        title = "Tips and tricks" if mixed else category[:1].upper() + category[1:]
        if old_ui:
            title += " (Word 2003)"
        sections: list[Entry] = []
        n = rng.randint(*SECTIONS_PER_PAGE)
        for k in range(n):
            srng = self.rng("docs", p, k)
            if srng.random() < PROSE_SECTION_RATE:
                heading = srng.choice(("Overview", "Before you begin", "See also", "Notes", "Related topics"))
                sections.append(Entry("doc", heading, [], None, None, context=srng.choice(CONTEXTS[3:])))
                continue
            noise = self.pick_noise(srng, "doc")
            if noise is None:
                entry = self.task_entry(srng, "doc", family=srng.choice(pool), old_ui=old_ui or None)
                self.done["doc"].append(entry)
            else:
                entry = self.noise_entry(srng, "doc", noise)
                if entry.noise is None:
                    self.done["doc"].append(entry)
            entry.html = html
            sections.append(entry)
        intro = rng.choice(
            (
                f"This page explains how to work with {category} in Word.",
                "The tasks below use the ribbon at the top of the Word window.",
                "Each section describes one task.",
            )
        )
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        return DocPage(
            name=f"{slug}-{p:04d}",
            title=title,
            intro=intro,
            sections=sections,
            list_marker=rng.choice(("1.", "1.", "1)", "-", "*")),
            html=html,
        )


# ---- assembling and writing --------------------------------------------------------------------------------
def build_corpus(seed: int, docs_pages: int, howto_articles: int, queries: int) -> Corpus:
    """The corpus in memory (what `write_corpus` writes), with every item's family, noise and defects."""
    gen = _Generator(seed)
    pages = [gen.page(p) for p in range(docs_pages)]
    articles = []
    for i in range(howto_articles):
        rng = gen.rng("howto", i)
        entry = gen.entry(rng, "howto")
        entry.id = f"wh-{i:06d}"
        if rng.random() < HTML_ARTICLE_RATE:
            entry.html = True
        if rng.random() < 0.6:
            slug = re.sub(r"[^a-z0-9]+", "-", entry.title.lower()).strip("-")[:60]
            entry.url = f"https://howto.example.org/{slug}-{i}"
        articles.append(entry)
    qs = [gen.query(gen.rng("query", i)) for i in range(queries)]
    return Corpus(pages, articles, qs, _counts(pages, articles, qs))


def _counts(pages: list[DocPage], articles: list[Entry], queries: list[Entry]) -> dict[str, int]:
    sections = [s for p in pages for s in p.sections]
    with_steps = [s for s in sections if s.steps]
    plans = [e for e in [*with_steps, *articles] if e.noise is None]
    counts = {
        "docs_pages": len(pages),
        "doc_sections": len(with_steps),
        "doc_sections_without_steps": len(sections) - len(with_steps),
        "howto_articles": len(articles),
        "queries": len(queries),
        "plans": len(plans),
        "plans_defective": sum(bool(e.defects) for e in plans),
    }
    for d in ("vague", "other_name", "old_ui", "missing_step", "extra_step"):
        counts[f"defect_{d}"] = sum(d in e.defects for e in plans)
    every = [*with_steps, *articles, *queries]
    for noise in NOISE_TYPES:
        counts[f"noise_{noise}"] = sum(e.noise == noise for e in every)
    counts["noise_html"] = sum(e.html for e in [*with_steps, *articles])
    return counts


def _page_markdown(page: DocPage) -> str:
    rng = random.Random(f"html/{page.name}")
    lines = [f"# {page.title}", "", f"<p>{page.intro}</p>" if page.html else page.intro, ""]
    for s in page.sections:
        lines.append(f"## {s.title}")
        lines.append("")
        if s.context:
            lines += [_html(rng, s.context, False) if s.html else s.context, ""]
        for k, step in enumerate(s.steps, 1):
            marker = f"{k}{page.list_marker[1]}" if page.list_marker[0] == "1" else page.list_marker
            lines.append(f"{marker} {_html(rng, step, True) if s.html and rng.random() < 0.6 else step}")
        if s.steps:
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _article_json(entry: Entry) -> str:
    rng = random.Random(f"html/{entry.id}")
    steps = list(entry.steps)
    if entry.html:
        steps = [_html(rng, s, True) if rng.random() < 0.6 else s for s in steps]
    numbering = rng.random()
    if numbering < 0.08:
        steps = [f"Step {k}: {s}" for k, s in enumerate(steps, 1)]
    elif numbering < 0.16:
        steps = [f"{k}. {s}" for k, s in enumerate(steps, 1)]
    obj: dict[str, object] = {"id": entry.id, "title": entry.title, "steps": steps}
    if entry.url:
        obj["url"] = entry.url
    if entry.context:
        obj["summary"] = entry.context
    return json.dumps(obj, ensure_ascii=False)


def _write_shards(folder: Path, stem: str, suffix: str, lines: list[str], per_file: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{stem}-*{suffix}"):
        old.unlink()  # shards of an earlier, larger run
    for n, start in enumerate(range(0, len(lines), per_file)):
        text = "\n".join(lines[start : start + per_file]) + "\n"
        (folder / f"{stem}-{n:04d}{suffix}").write_text(text, encoding="utf-8", newline="\n")


def write_corpus(
    out_dir: Path, *, seed: int, docs_pages: int, howto_articles: int, queries: int
) -> dict[str, int]:
    """Write the raw corpus under `out_dir` (docs/, howto/, queries/; earlier shards of ours are replaced)
    and return its counts: items by kind, plans with defects by defect, items by noise type."""
    for name, value in (("docs_pages", docs_pages), ("howto_articles", howto_articles), ("queries", queries)):
        if value < 0:
            raise ValueError(f"sources.{name} must be >= 0, got {value}")
    corpus = build_corpus(seed, docs_pages, howto_articles, queries)
    out_dir = Path(out_dir)
    docs = out_dir / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for old in docs.glob("*-[0-9][0-9][0-9][0-9].md"):
        old.unlink()  # pages of an earlier, larger run
    for page in corpus.pages:
        (docs / f"{page.name}.md").write_text(_page_markdown(page), encoding="utf-8", newline="\n")
    _write_shards(
        out_dir / "howto",
        "articles",
        ".jsonl",
        [_article_json(a) for a in corpus.articles],
        ARTICLES_PER_FILE,
    )
    _write_shards(out_dir / "queries", "queries", ".txt", [q.title for q in corpus.queries], QUERIES_PER_FILE)
    return corpus.counts


__all__ = ["Corpus", "DocPage", "Entry", "build_corpus", "write_corpus"]
