"""The stage list of lamops.stages.STAGES agrees with dvc.yaml, params.yaml, the CLI and the Prefect flow."""

import pytest
import typer.main
import yaml
from helpers import ROOT

from lamops.cli import app
from lamops.config import Config, load_config
from lamops.stages import REGISTRY_STAGES, STAGES
from tasks.stages import stage_task

# params.yaml sections that are not stages.
SHARED_SECTIONS = {"project", "env", "pipeline", "tracking", "llm", "ray", "model", "train", "remote"}


@pytest.fixture(scope="module")
def params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_dvc_yaml_has_every_stage_in_order(dvc_stages: dict) -> None:
    # promote moves registry aliases: it has no DVC output, so it is a stage everywhere but in dvc.yaml.
    assert list(dvc_stages) == [name for name in STAGES if name not in REGISTRY_STAGES]


def test_dvc_yaml_runs_each_stage_through_the_cli(dvc_stages: dict) -> None:
    for name, stage in dvc_stages.items():
        assert stage["cmd"] == f"lamops {name}", name


def test_dvc_yaml_params_exist_in_params_yaml(dvc_stages: dict, params: dict) -> None:
    for name, stage in dvc_stages.items():
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, (
                    f"dvc.yaml stage {name}: no {key} in params.yaml"
                )
                node = node[part]


def test_params_yaml_has_one_section_per_stage(params: dict) -> None:
    assert set(params) - SHARED_SECTIONS == set(STAGES)
    sections = set(Config.model_fields) - {"root", "profile"}
    assert set(params) == sections, "params.yaml sections and lamops.config.Config disagree"


def test_cli_has_a_command_per_stage() -> None:
    commands = typer.main.get_command(app).commands
    assert set(STAGES) <= set(commands)


def test_flow_runs_every_stage_by_default() -> None:
    assert load_config(ROOT / "params.yaml").pipeline.stages == STAGES


def test_prefect_tasks_are_named_after_stages() -> None:
    pipeline = load_config(ROOT / "params.yaml").pipeline
    assert [stage_task(name, pipeline).name for name in STAGES] == list(STAGES)


def test_a_stage_is_not_retried_for_an_error_a_retry_cannot_fix() -> None:
    from prefect.states import Failed

    from lamops.config import ConfigError
    from lamops.io import UnsafeOutput
    from tasks.stages import worth_retrying

    cfg = load_config(ROOT / "params.yaml")
    task = stage_task("collect", cfg.pipeline)
    assert task.retry_condition_fn is worth_retrying and task.retries == cfg.pipeline.retries_of("collect")
    for error in (ConfigError("collect.sources: missing"), UnsafeOutput("collect.out_dir: the project")):
        assert not worth_retrying(task, None, Failed(data=error))
    assert worth_retrying(task, None, Failed(data=RuntimeError("worker died")))


@pytest.mark.parametrize("profile", sorted(p.stem for p in (ROOT / "params").glob("*.yaml")))
def test_every_profile_loads_and_names_only_real_sections(profile: str) -> None:
    """A profile is merged over params.yaml: each of its sections must be a stage or a shared section, and
    the merged configuration must validate (the quality and paper profiles run nowhere in CI)."""
    overrides = yaml.safe_load((ROOT / "params" / f"{profile}.yaml").read_text()) or {}
    assert set(overrides) <= set(STAGES) | SHARED_SECTIONS, f"params/{profile}.yaml: unknown sections"
    cfg = load_config(ROOT / "params.yaml", profile=profile)
    assert cfg.profile == profile
