"""One Prefect task per stage: a thin wrapper of `lamops.stages.<name>.run` with the stage's retries and
timeout, which skips the stage when it is unchanged since its last run (lamops.stages.fingerprint)."""

from __future__ import annotations

from typing import Any

from prefect import State, Task, task
from prefect.cache_policies import NO_CACHE

from lamops.config import Config, ConfigError, PipelineConfig
from lamops.io import UnsafeOutput
from lamops.stages import get_stage
from lamops.stages.base import RecordsLost, StageInputError, StageResult
from lamops.stages.fingerprint import run_unless_unchanged

# Errors a retry cannot fix: bad settings, an unsafe output folder, input with nothing usable, counts that do
# not add up. They fail the stage at once instead of after `retries` x `retry_delay_s`.
NOT_RETRIED: tuple[type[BaseException], ...] = (ConfigError, UnsafeOutput, StageInputError, RecordsLost)


def worth_retrying(task: Task, task_run: Any, state: State) -> bool:
    """Prefect's retry_condition_fn: retry unless the stage failed with one of NOT_RETRIED."""
    return not isinstance(state.data, NOT_RETRIED)


def stage_task(name: str, pipeline: PipelineConfig) -> Task[[Config, bool], StageResult]:
    """The Prefect task, named `name`, that runs stage `name` with its retries and timeout in `pipeline`.

    Called with `(cfg, force)`: unless `force` or `pipeline.skip_unchanged` is off, an unchanged stage is
    not run and its task run returns a StageResult whose message says it was skipped.
    """

    def run_stage(cfg: Config, force: bool = False) -> StageResult:
        skip = cfg.pipeline.skip_unchanged and not force
        return run_unless_unchanged(cfg, name, get_stage(name), force=not skip)

    return task(
        run_stage,
        name=name,
        retries=pipeline.retries_of(name),
        retry_delay_seconds=pipeline.retry_delay_s,
        retry_condition_fn=worth_retrying,
        timeout_seconds=pipeline.timeout_of(name),
        # Prefect's cache keyed on the config would go on serving a stage's old result after its code changed
        # or its outputs were deleted: skipping is decided from the content of deps and outs instead.
        cache_policy=NO_CACHE,
    )
