"""Progress bars on long work, on stderr; off with LAMOPS_PROGRESS=0 (logs of scheduled runs, tests)."""

from __future__ import annotations

import os


def show_progress() -> bool:
    """Progress bars on stderr, unless LAMOPS_PROGRESS=0 (logs of scheduled runs, tests)."""
    return os.environ.get("LAMOPS_PROGRESS") != "0"


def progress(iterable, desc: str, total: int | None = None):
    """A progress bar over a long loop (see show_progress)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not show_progress(), mininterval=1.0, unit="it")
