"""Test-wide environment: no telemetry, no model hub, and Prefect state in a temporary folder; the fixtures
several test folders share. Plain helpers (ROOT, CharTokenizer, tiny_spec, copy_project) are in
tests/helpers.py."""

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


# The slowest modules, slowest first (baseline of the full suite, `--durations`, on a loaded 2-core machine:
# seconds of setup + calls per module once; the rest take under 2 minutes each). scripts/test.sh runs
# `--dist loadfile --no-loadscope-reorder`: a module is one unit of work on one worker (its module fixtures
# built once), and units go out in collection order, so starting the long ones first keeps one worker from
# finishing 10-20 minutes after the other (longest-first scheduling).
SLOWEST_FIRST = (
    "tests/stages/test_train_stages.py",  # ~1,400 s: five phases under Ray Train, kill/resume, evaluate
    "tests/integration/test_mlflow_server.py",  # ~1,270 s: `lamops pipeline --profile ci` on a server
    "tests/test_data_pipeline.py",  # ~590 s: `dvc repro datasets` in two fresh clones
    "tests/integration/test_flow_resume.py",  # ~580 s: the flow killed in imitate, resumed
    "tests/env/test_families.py",  # ~470 s: the environment sweep
    "tests/stages/test_evaluate_promote.py",  # ~460 s
    "tests/integration/test_prefect_deployment.py",  # ~280 s
    "tests/train/test_distributed.py",  # ~230 s
    "tests/train/test_offline_rl.py",  # ~170 s
    "tests/train/test_reward.py",  # ~145 s
    "tests/test_summary.py",  # ~125 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """SLOWEST_FIRST's modules first, in its order; every other module after them in collection order. A
    stable sort by module: each module's items stay together and in their order."""
    rank = {path: k for k, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


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


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module: in-process work on tiny models gains nothing from a second thread
    and, on a loaded 2-core machine, two threads spin against each other (10-30x slower, measured); Ray's
    workers set their own threads. Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_project(tmp_path_factory) -> Path:
    """The small data project of tests/small_project.py, every data stage run: once per session (per xdist
    worker). Read only: a test that writes into a project works in `helpers.copy_project(data_project, ...)`.
    """
    from small_project import build

    return build(tmp_path_factory.mktemp("small-project") / "project", ROOT)


@pytest.fixture(scope="session")
def expert_steps():
    """Expert steps on one task of every task family: real observation prompts and completions (~3 s)."""
    from lamops.agents.expert import ExpertAgent
    from lamops.env.families import FAMILIES, applicable_templates, sample_task
    from lamops.env.word import WordEnv

    env, expert, out = WordEnv(), ExpertAgent(), []
    for family in sorted(FAMILIES):
        task = sample_task(family, applicable_templates(family)[0], 0)
        if task is not None:
            out += expert.run(env, task, verify=False).steps
    return out


@pytest.fixture(scope="session")
def sp_mistral(expert_steps, tmp_path_factory) -> Path:
    """A Mistral-style SentencePiece tokenizer (tests/sp_model.py) trained on the expert steps' prompts and
    completions, saved with a tiny random MistralForCausalLM: a `model.source: pretrained` folder."""
    from sp_model import save_sp_mistral

    texts = [t for s in expert_steps for t in (s.prompt, s.completion())]
    return save_sp_mistral(
        texts, tmp_path_factory.mktemp("sp-mistral") / "model", max_position_embeddings=2048
    )
