"""Fixtures shared by the data-building tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray of 2 CPUs for the whole session (start-up is 5-7 s: once, not per test); shut down at the
    end if this fixture started it. `address="local"` keeps a $RAY_ADDRESS in the shell from being used."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def template_library(tmp_path_factory):
    """The built-in template library written to disk, as the templates stage does."""
    from lamops.env.templates import build_library

    path = tmp_path_factory.mktemp("templates")
    build_library(path)
    return path


@pytest.fixture(scope="session")
def family_tasks():
    """One task per family (seed 0, on the first template the family applies to), sorted by task id."""
    from lamops.env.families import FAMILIES, applicable_templates, sample_task

    tasks = [sample_task(f, applicable_templates(f)[0], 0) for f in sorted(FAMILIES)]
    return sorted((t for t in tasks if t is not None), key=lambda t: t.task_id)
