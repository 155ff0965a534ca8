"""`collect`: raw sources -> cleaned, filtered, deduplicated task-plan pairs.

Steps, each counting what it drops by reason (every drop is written to the quarantine file):
1. read: the three source formats of docs/data-sources.md from a folder or an S3 prefix (malformed files and
   lines are quarantined, the rest kept: lamops.data.source_files);
2. clean: HTML remnants, entities, step numbering and whitespace;
3. structure: the structurer role turns an entry into task-plan pairs (rule-based built in, or an LLM);
4. filter: language (English only), length (task characters, plan steps and characters), relevance (about
   this application, not another app or a phone);
5. deduplicate: exact (normalised text) and near duplicates (MinHash over word 3-shingles, verified by exact
   Jaccard similarity); the first in source order is kept.
Steps 2-4 and the MinHash signatures run in parallel batches (Ray Data); deduplication is global."""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

from lamops.data.source_files import reject
from lamops.records import RawEntry, TaskPlanPair
from lamops.roles.protocols import Structurer


@dataclass(frozen=True)
class Limits:
    min_task_chars: int
    max_task_chars: int
    min_steps: int
    max_steps: int
    max_plan_chars: int


# ---- 2. cleaning -------------------------------------------------------------------------------------
_TAG = re.compile(r"<[^>]{0,200}>")
_STEP_PREFIX = re.compile(r"^\s*(?:step\s*\d+\s*[:.)-]?|\d{1,3}\s*[.):-]|[-*+•])\s*", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Remove HTML tags and entities, control characters and runs of whitespace."""
    text = html.unescape(_TAG.sub(" ", text))
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C" or c in "\n\t")
    return _SPACE.sub(" ", text).strip()


def clean_step(step: str) -> str:
    return _STEP_PREFIX.sub("", clean_text(step), count=1).strip()


def clean_entry(entry: RawEntry) -> RawEntry:
    return entry.model_copy(
        update={
            "title": clean_text(entry.title),
            "text": clean_text(entry.text),
            "steps": [s for s in (clean_step(s) for s in entry.steps) if s],
        }
    )


# ---- 4. filters (pure) ---------------------------------------------------------------------------------
_EN = set(
    "the a an to in of and or for on with your you it is are be this that from by as at click select "
    "open choose text document word page then if want how make add change use".split()
)
_OTHER_LANG = set(
    "der die das und ist nicht mit den zu ein eine auf für wie el la los las de que y en un una para con "
    "por como le les des et est dans pour une sur avec pas du".split()
)
_OFF_TOPIC = re.compile(
    r"\b(?:in|on|using|with|for|from)\s+(?:the\s+|my\s+|an?\s+)?(?:microsoft\s+)?"
    r"(?:excel|powerpoint|google\s+(?:docs|sheets|slides)|apple\s+pages|pages\s+app|libreoffice|"
    r"open\s*office|iphone|ipad|android|smartphone|phone|mobile|outlook|onenote|notepad|keynote|numbers)\b",
    re.IGNORECASE,
)
_WORD_TOKEN = re.compile(r"[^\W\d_]+", re.UNICODE)


def language_reason(text: str) -> str | None:
    """'non_english' when the text is not English (script or function words), else None."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "non_english"
    if sum(c.isascii() for c in letters) / len(letters) < 0.9:
        return "non_english"
    words = [w.lower() for w in _WORD_TOKEN.findall(text)]
    english, other = sum(w in _EN for w in words), sum(w in _OTHER_LANG for w in words)
    return "non_english" if other > english else None


def length_reason(task: str, plan: list[str], limits: Limits) -> str | None:
    if len(task) < limits.min_task_chars or len(plan) < limits.min_steps:
        return "too_short"
    plan_chars = sum(len(s) for s in plan)
    if (
        len(task) > limits.max_task_chars
        or len(plan) > limits.max_steps
        or plan_chars > limits.max_plan_chars
    ):
        return "too_long"
    return None


def relevance_reason(task: str, plan: list[str]) -> str | None:
    """'off_topic' for entries about another app or a phone; 'irrelevant' when nothing in them is about a
    feature of this application."""
    from lamops.roles.knowledge import best_feature

    if _OFF_TOPIC.search(task):
        return "off_topic"
    if best_feature(" ".join([task, *plan])) is None:
        return "irrelevant"
    return None


# ---- 5. deduplication ----------------------------------------------------------------------------------
NUM_PERM = 64
BANDS = 16
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_RNG = np.random.default_rng(20241213)
_A = (_RNG.integers(1, 2**63, NUM_PERM, dtype=np.uint64) | np.uint64(1)).astype(np.uint64)
_B = _RNG.integers(0, 2**63, NUM_PERM, dtype=np.uint64).astype(np.uint64)


def normalise(task: str, plan: list[str]) -> str:
    text = " ".join([task, *plan]).lower()
    return " ".join(re.findall(r"[a-z0-9]+", text))


def shingles(norm: str, n: int = 3) -> set[str]:
    words = norm.split()
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def minhash(sh: set[str]) -> np.ndarray:
    base = np.array(
        [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") for s in sorted(sh)],
        dtype=np.uint64,
    )
    with np.errstate(over="ignore"):
        mixed = base[:, None] * _A[None, :] + _B[None, :]
        mixed ^= mixed >> np.uint64(29)
    return mixed.min(axis=0)


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def deduplicate(
    items: list[dict[str, Any]], threshold: float
) -> tuple[list[int], dict[int, tuple[str, int]]]:
    """Indices of `items` to keep (first of each group, in order) and, for each dropped index, its reason
    (duplicate / near_duplicate) and the index it duplicates. Each item has `norm` and `signature`."""
    keep: list[int] = []
    dropped: dict[int, tuple[str, int]] = {}
    exact: dict[str, int] = {}
    buckets: dict[tuple[int, bytes], list[int]] = {}
    rows = NUM_PERM // BANDS
    shingle_cache: dict[int, set[str]] = {}
    for i, item in enumerate(items):
        digest = hashlib.sha1(item["norm"].encode()).hexdigest()
        if digest in exact:
            dropped[i] = ("duplicate", exact[digest])
            continue
        signature = item["signature"]
        keys = [(b, signature[b * rows : (b + 1) * rows].tobytes()) for b in range(BANDS)]
        mine = shingle_cache.setdefault(i, shingles(item["norm"]))
        match = None
        for key in keys:
            for j in buckets.get(key, ()):
                theirs = shingle_cache.setdefault(j, shingles(items[j]["norm"]))
                if jaccard(mine, theirs) >= threshold:
                    match = j
                    break
            if match is not None:
                break
        if match is not None:
            dropped[i] = ("near_duplicate", match)
            continue
        exact[digest] = i
        keep.append(i)
        for key in keys:
            buckets.setdefault(key, []).append(i)
    return keep, dropped


# ---- the whole stage, as pure-ish functions the stage module calls -------------------------------------
def pair_id(kind: str, origin: str, k: int) -> str:
    digest = hashlib.blake2b(f"{origin}|{k}".encode(), digest_size=6).hexdigest()
    return f"{kind}-{digest}"


def process_entries(batch: list[RawEntry], structurer: Structurer, limits: Limits) -> list[dict[str, Any]]:
    """Clean, structure, filter and sign one batch; each output is {"pair": ..., "where": ...} or
    {"rejected": ...}, and names its entry's `origin` (the stage counts records by it)."""
    out: list[dict[str, Any]] = []
    for entry in batch:
        entry = clean_entry(entry)
        where = entry.where or entry.origin
        try:
            drafts = structurer.structure(entry)
        except Exception as err:  # an LLM or rule failure on one entry must not lose the others
            detail = f"{type(err).__name__}: {err}"
            out.append(
                {"origin": entry.origin, "rejected": reject("structure_failed", detail, where, entry.title)}
            )
            continue
        if not drafts:
            reason = language_reason(entry.title) or "no_plan"
            rejected = reject(reason, "no task-plan pair in the entry", where, entry.title)
            out.append({"origin": entry.origin, "rejected": rejected})
            continue
        for k, draft in enumerate(drafts):
            task = clean_text(draft.task)
            plan = [s for s in (clean_step(s) for s in draft.plan) if s]
            text = " ".join([task, *plan])
            reason = (
                language_reason(text) or length_reason(task, plan, limits) or relevance_reason(task, plan)
            )
            if reason:
                out.append({"origin": entry.origin, "rejected": reject(reason, "", where, text)})
                continue
            norm = normalise(task, plan)
            pair = TaskPlanPair(
                task_id=pair_id(entry.kind, entry.origin, k),
                task=task,
                plan=plan,
                source=entry.kind,
                origin=entry.origin,
            )
            signature = minhash(shingles(norm))
            out.append(
                {"origin": entry.origin, "where": where, "pair": pair, "norm": norm, "signature": signature}
            )
    return out
