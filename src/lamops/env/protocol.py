"""The environment protocol: what an agent needs from an application, whatever implements it.

The built-in `WordEnv` is one implementation; a UFO-on-Windows or LibreOffice backend would be another."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from lamops.env.observation import Observation
from lamops.records import InstantiatedTask, Verdict


class StepResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    observation: Observation | None
    ok: bool  # False when the action was refused; the state is then unchanged
    result: str  # what happened, in words the agent reads in its history
    done: bool  # the agent said FINISH or the step budget ran out
    latency: float = 0.0


@runtime_checkable
class Environment(Protocol):
    def reset(self, task: InstantiatedTask) -> Observation: ...

    def step(self, action: str | dict[str, Any]) -> StepResult: ...

    def verify(self) -> Verdict: ...

    def save(self, path: Path) -> Path: ...

    def close(self) -> None: ...
