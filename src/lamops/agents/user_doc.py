"""Running a LAM on a user's own .docx (`lamops agent`): the user's task, the agent's max_len, one episode on
the document. Checking, reading and writing the .docx is `lamops.env.user_docx`.

A user's document is an episode's only template (`USER_TEMPLATE`) with a task that has no family, so no goal
predicate: nothing verifies the result. The input's bytes are read once and never written; the episode edits
an in-memory copy, and the result goes to another file through a temporary file in the output's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lamops.env.user_docx import UserDocumentError
from lamops.records import InstantiatedTask, Trajectory

if TYPE_CHECKING:
    from lamops.agents.lam import LAMAgent, StepHook
    from lamops.config import Config

USER_TEMPLATE = "user-document"
USER_TASK_ID = "user-document"


# ---------------------------------------------------------------------------------------------- model


def agent_max_len(cfg: Config) -> int:
    """The agent's max_len for a model trained by the pipeline: room for a prompt as long as LAM2 trained
    with (the agent fits prompts into max_len - max_new_tokens - 1, SFT into max_len - 1 - ~80 tokens)."""
    from lamops.agents.lam import AgentConfig

    return cfg.imitate.sft.max_len + AgentConfig.model_fields["max_new_tokens"].default - 80


# ---------------------------------------------------------------------------------------------- episode


def user_task(request: str) -> InstantiatedTask:
    """The task of a request on the user's document: no family, so no goal predicate."""
    request = " ".join(request.split())
    if not request:
        raise UserDocumentError("the request is empty: say what to do to the document")
    return InstantiatedTask(task_id=USER_TASK_ID, template=USER_TEMPLATE, request=request)


@dataclass
class UserRun:
    """One episode on a user's document: its trajectory and the resulting document's bytes."""

    trajectory: Trajectory
    document: bytes
    finished: bool  # the agent said FINISH (else the step limit stopped it)


def run_on_document(
    agent: LAMAgent,
    data: bytes,
    request: str,
    *,
    on_step: StepHook | None = None,
) -> UserRun:
    """Play one episode of `request` on the document `data` with `agent` (its config's max_steps and prompt
    view); `on_step` sees each step as it happens. `data` is not modified; the result is `UserRun.document`.
    """
    from lamops.agents.lam import run_episodes
    from lamops.env.templates import normalize_docx_bytes
    from lamops.env.word import WordEnv

    task = user_task(request)
    config = agent.config
    envs: list[WordEnv] = []

    def make_env() -> WordEnv:
        env = WordEnv({USER_TEMPLATE: data}, max_steps=config.max_steps, view=config.view())
        envs.append(env)
        return env

    [trajectory] = run_episodes(agent, [task], make_env, agent_name="lam", on_step=on_step)
    env = envs[0]
    if env.live is None or (trajectory.error or "").startswith("reset failed"):
        raise UserDocumentError(f"the environment could not open the document: {trajectory.error}")
    document = normalize_docx_bytes(env.live.to_bytes())
    finished = bool(trajectory.steps) and trajectory.steps[-1].status == "FINISH"
    env.close()
    return UserRun(trajectory=trajectory, document=document, finished=finished)
