"""Plain helpers shared by the test modules: `from helpers import ROOT, CharTokenizer, tiny_spec`.

tests/ is on sys.path because tests/conftest.py lives there (pytest's default "prepend" import mode puts a
conftest's folder first), so modules in any folder under tests/ import this as `helpers`. Fixtures live in
tests/conftest.py; only plain values, classes and functions here.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

# The repository root, whatever folder under tests/ a module is in.
ROOT = Path(__file__).resolve().parents[1]

# The tiny Mistral most in-process tests build: 2 layers, 64 wide, 4 query / 2 key-value heads. A test that
# needs other sizes passes them to tiny_spec; the numbers are part of what its assertions were tuned to.
TINY_MODEL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "vocab_size": 1024,
}


def tiny_spec(**sizes):
    """lamops.settings.ModelSpec of TINY_MODEL, `sizes` overriding its fields."""
    from lamops.settings import ModelSpec

    return ModelSpec(**{**TINY_MODEL, **sizes})


class CharTokenizer:
    """One token per character (its code point), BOS 1, EOS 2, PAD 0: expected ids can be written by hand.

    Called as the code under test must call a tokenizer here, without special tokens: the code adds BOS and
    EOS itself (or none at all).
    """

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        assert not add_special_tokens, "the code under test must add BOS and EOS itself"
        return {"input_ids": [ord(c) for c in text]}


def copy_project(source: Path, target: Path) -> Path:
    """A copy of a project folder that shares nothing with `source`, which stays untouched.

    The MLflow store (mlflow.db) keeps absolute artifact locations: an experiment's and every run's point into
    `source`. They are rewritten to `target`, so runs logged in the copy write their artifacts there.
    """
    shutil.copytree(source, target, symlinks=True)
    db = target / "mlflow.db"
    if db.is_file():
        old, new = source.resolve().as_uri(), target.resolve().as_uri()
        with sqlite3.connect(db) as connection:
            for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
                connection.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                    f"WHERE substr({column}, 1, ?) = ? AND substr({column}, ?, 1) IN ('', '/')",
                    (new, len(old) + 1, len(old), old, len(old) + 1),
                )
        connection.close()
    return target


# ---- collect's two read paths (tests/data/test_map_files.py, test_collect_s3.py) -----------------------
def collect_cfg(endpoint: str | None = None):
    """What lamops.stages.collect's read_in_driver / read_in_workers read of the config: 2 workers."""
    from types import SimpleNamespace

    return SimpleNamespace(
        collect=SimpleNamespace(workers=2, s3_endpoint_url=endpoint), ray=SimpleNamespace(address=None)
    )


def comparable(read) -> tuple:
    """read_in_*'s outputs with records as JSON and the MinHash arrays as lists (numpy has no plain ==)."""
    results, rejected, unread, entry_file, raw_entries = read
    rows = [
        {
            k: v.model_dump_json() if hasattr(v, "model_dump_json") else v.tolist() if k == "signature" else v
            for k, v in r.items()
        }
        for r in results
    ]
    return rows, [r.model_dump_json() for r in rejected], unread, entry_file, raw_entries


def collect_process_fn():
    """collect's worker function with the built-in structurer and the default limits' shape."""
    from functools import partial

    from lamops.data.collect import Limits, process_entries
    from lamops.roles.builtin import BuiltinStructurer

    return partial(process_entries, structurer=BuiltinStructurer(), limits=Limits(10, 300, 1, 30, 3000))


def walk(cur, tokens, copy: bool) -> None:
    """Write `tokens` (a completion as training tokenizes it) with the decoder's cursor
    (`decoding.teacher_forced`: forced chunks must be its tokens, every other token must be allowed; with
    `copy`, a token that starts an offered copy writes that copy); fail naming where it stopped."""
    from lamops.agents.decoding import teacher_forced

    choices = teacher_forced(cur, tokens, copy=copy)
    assert choices is not None, (cur.text(), len(cur.tokens), tokens[len(cur.tokens) : len(cur.tokens) + 3])
    assert [c.position for c in choices] == sorted({c.position for c in choices})
