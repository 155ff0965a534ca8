"""Test-wide environment: no telemetry, no model hub, and Prefect state in a temporary folder."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The environment of scripts/env.sh, for pytest run without scripts/test.sh. Set before any test module
# imports prefect, ray, transformers or dvc: they read these at import time.
_EXPORTS = re.findall(
    r'^export (\w+)="\$\{\w+:-(.*)\}"$', (ROOT / "scripts/env.sh").read_text(), re.MULTILINE
)
if not _EXPORTS:
    raise RuntimeError('scripts/env.sh: no `export NAME="${NAME:-value}"` lines found')
for _name, _value in _EXPORTS:
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A temporary Prefect server, database and home for flow runs, never the user's ~/.prefect.

    Prefect's test harness starts the same temporary server as ephemeral mode, and drains logs and events
    before stopping it (ephemeral mode stops it at exit, logging into output pytest has closed). Started
    once per session: ~15-20 s on 2 cores.
    """
    from prefect.settings import PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    with pytest.MonkeyPatch.context() as patch, temporary_settings({PREFECT_HOME: home}):
        patch.setenv("PREFECT_HOME", str(home))
        with prefect_test_harness():
            yield
