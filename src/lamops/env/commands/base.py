"""What every command module shares: the refusal a command raises, and the parsing of numeric fields."""

from __future__ import annotations

import re


class Refused(Exception):
    """A command that cannot run in the current state (nothing selected, bad dialog value...)."""


def parse_number(text: str, unit: str, lo: float, hi: float, field: str) -> float:
    """Parse '12', '12 pt', '0.5"', '0.5 in' into a number in [lo, hi]."""
    m = re.fullmatch(r'\s*(-?\d+(?:\.\d+)?)\s*(pt|in|"|%)?\s*', text)
    if not m:
        raise Refused(f"{field}: {text!r} is not a number ({unit})")
    value = float(m.group(1))
    if not lo <= value <= hi:
        raise Refused(f"{field}: {value:g} is outside {lo:g}..{hi:g} {unit}")
    return value
