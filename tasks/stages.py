"""One Prefect task per stage: a thin wrapper of `lamops.stages.<name>.run` with retries and a timeout."""

from __future__ import annotations

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from lamops.config import Config, PipelineConfig
from lamops.stages import get_stage
from lamops.stages.base import StageResult


def stage_task(name: str, pipeline: PipelineConfig) -> Task[[Config], StageResult]:
    """The Prefect task, named `name`, that runs stage `name` with the retries and timeout of `pipeline`."""

    def run_stage(cfg: Config) -> StageResult:
        return get_stage(name)(cfg)

    return task(
        run_stage,
        name=name,
        retries=pipeline.retries,
        retry_delay_seconds=pipeline.retry_delay_s,
        timeout_seconds=pipeline.timeout_s,
        # Caching is DVC's job (`dvc repro`): a Prefect cache keyed on the config would go on serving a
        # stage's old result after its code changed or its outputs were deleted.
        cache_policy=NO_CACHE,
    )
