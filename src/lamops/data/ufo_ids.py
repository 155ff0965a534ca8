"""Task ids for UFO's records: `safe_id` turns UFO's unique_id into a lamops task id (or refuses it), and the
small text helpers the UFO import and export share."""

from __future__ import annotations

import hashlib
import re

from lamops.records import ID_PATTERN

__all__ = ["MAX_ID_CHARS", "UnusableIdError", "json_type", "safe_id", "short", "short_hash", "with_suffix"]

MAX_ID_CHARS = 128  # ID_PATTERN's limit
ID_RE = re.compile(ID_PATTERN)


class UnusableIdError(ValueError):
    """A unique_id lamops cannot turn into a safe task id."""


def safe_id(raw: object) -> str:
    """A task id matching ID_PATTERN derived from UFO's unique_id; identical when it already matches.

    Odd characters (spaces, separators inside the id, non-ASCII) become '_'; an id that names a path out of
    its folder ('..', a leading separator or drive), is empty, or holds control characters is unusable."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise UnusableIdError(f"unique_id must be a string, got {json_type(raw)}")
    text = str(raw).strip()
    if ID_RE.match(text):
        return text
    if not text:
        raise UnusableIdError("unique_id is empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UnusableIdError(f"unique_id {short(text)} holds control characters")
    parts = re.split(r"[\\/]", text)
    if ".." in parts or text[0] in "\\/" or re.match(r"^[A-Za-z]:", text):
        raise UnusableIdError(f"unique_id {short(text)} looks like a path that leaves its folder")
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
    cleaned = re.sub(r"^[^A-Za-z0-9]+", "", cleaned)
    if not cleaned:
        raise UnusableIdError(f"unique_id {short(text)} has no letters or digits")
    if len(cleaned) > MAX_ID_CHARS:
        cleaned = f"{cleaned[: MAX_ID_CHARS - 9]}-{short_hash(text)}"
    return cleaned


def short_hash(text: str, n: int = 8) -> str:
    """The first `n` hex digits of `text`'s SHA-1: a stable suffix that tells clashing ids apart."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def with_suffix(base: str, key: str) -> str:
    """`base` with a suffix hashed from `key` (the file's path), cut to stay within MAX_ID_CHARS."""
    suffix = "-" + short_hash(key)
    return base[: MAX_ID_CHARS - len(suffix)] + suffix


def json_type(value: object) -> str:
    """What JSON calls `value`'s type ("an object", "a number"), for messages about a record's shape."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def short(text: str, n: int = 60) -> str:
    """`text` quoted and cut to about `n` characters, for a message."""
    return repr(text if len(text) <= n else text[:n] + "...")
