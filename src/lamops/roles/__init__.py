"""The LLM roles of data building, one interface each, as the paper's GPT-4o plays them.

Every role has two implementations: the built-in deterministic one (no network; `builtin.py`) and an
OpenAI-compatible endpoint (`openai_roles.py`, over the client of `openai_compat.py`); both implement the
interfaces of `protocols.py`. Stages receive a `Roles` bundle from `make_roles(cfg.llm)` and never know which
one they hold."""

from __future__ import annotations

from typing import Any

from lamops.records import TaskPlanPair
from lamops.roles.protocols import Roles


def make_roles(llm: Any, pairs: dict[str, TaskPlanPair] | None = None, max_added_words: int = 20) -> Roles:
    """The roles params.yaml's `llm` section asks for: built-in (`pairs` lets the built-in prefill find the
    parents of evolved pairs) or an OpenAI-compatible endpoint."""
    if llm.provider == "builtin":
        from lamops.roles.builtin import builtin_roles

        return builtin_roles(pairs, max_added_words)
    from lamops.roles.openai_compat import LLMSettings
    from lamops.roles.openai_roles import make_openai_roles

    return make_openai_roles(
        LLMSettings(
            base_url=llm.base_url,
            model=llm.model,
            api_key_env=llm.api_key_env,
            timeout_s=llm.timeout_s,
            max_retries=llm.max_retries,
            temperature=llm.temperature,
        )
    )
