"""load_config: defaults, profiles, overrides, and errors that say where to fix them."""

import re
import shutil
from pathlib import Path

import pytest
from helpers import ROOT

from lamops.config import DEFAULT_PROFILE, ConfigError, load_config
from lamops.stages import STAGES


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's params files; returns its params.yaml."""
    shutil.copy(ROOT / "params.yaml", tmp_path)
    shutil.copytree(ROOT / "params", tmp_path / "params")
    return tmp_path / "params.yaml"


@pytest.fixture(autouse=True)
def no_profile_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMOPS_PROFILE", raising=False)


def test_defaults_load_from_params_yaml(project: Path) -> None:
    cfg = load_config(project)
    assert cfg.profile == DEFAULT_PROFILE
    assert cfg.root == project.parent.resolve()
    assert cfg.project.name == "lamops"
    assert cfg.env.control_format == "names"
    assert cfg.pipeline.stages == STAGES
    assert cfg.path(cfg.templates.out_dir) == project.parent.resolve() / "data/templates"


def test_absolute_paths_stay_absolute(project: Path, tmp_path: Path) -> None:
    cfg = load_config(project, overrides=[f"templates.out_dir={tmp_path / 'elsewhere'}"])
    assert cfg.path(cfg.templates.out_dir) == tmp_path / "elsewhere"


def test_profile_is_deep_merged(project: Path) -> None:
    (project.parent / "params/small.yaml").write_text("env:\n  max_steps: 5\n")
    cfg = load_config(project, profile="small")
    assert cfg.profile == "small"
    assert cfg.env.max_steps == 5
    assert cfg.env.control_format == "names"  # the rest of the section comes from params.yaml


def test_profile_from_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMOPS_PROFILE", "ci")
    assert load_config(project).profile == "ci"


def test_ci_profile_loads() -> None:
    assert load_config(ROOT / "params.yaml", profile="ci").profile == "ci"


def test_overrides_apply_last_and_parse_yaml(project: Path) -> None:
    cfg = load_config(
        project, profile="ci", overrides=["pipeline.retries=3", "env.control_format=json", "project.seed=7"]
    )
    assert (cfg.pipeline.retries, cfg.env.control_format, cfg.project.seed) == (3, "json", 7)


def test_bad_value_names_file_and_field(project: Path) -> None:
    project.write_text(project.read_text().replace("max_steps: 30", "max_steps: many"))
    with pytest.raises(ConfigError, match=r"params\.yaml: env\.max_steps: .*integer"):
        load_config(project)


def test_bad_value_in_profile_names_the_profile_file(project: Path) -> None:
    (project.parent / "params/bad.yaml").write_text("templates:\n  out_dir: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"params/bad\.yaml: templates\.out_dir: "):
        load_config(project, profile="bad")


def test_extra_keys_are_rejected(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"override 'templates\.outdir=x': templates\.outdir: Extra inputs"):
        load_config(project, overrides=["templates.outdir=x"])
    project.write_text(project.read_text() + "\nnot_a_stage:\n  x: 1\n")
    with pytest.raises(ConfigError, match=r"params\.yaml: not_a_stage: Extra inputs"):
        load_config(project)


def test_missing_key_names_the_params_file(project: Path) -> None:
    project.write_text(project.read_text().replace("  retries: 1\n", ""))
    with pytest.raises(ConfigError, match=r"params\.yaml: pipeline\.retries: Field required"):
        load_config(project)


def test_unknown_profile_lists_the_profiles(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown profile 'nope'.*profiles: tiny \(params\.yaml\), ci"):
        load_config(project, profile="nope")


def test_bad_override_names_the_key(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"override 'pipeline\.retries': expected section\.key=value"):
        load_config(project, overrides=["pipeline.retries"])
    with pytest.raises(ConfigError, match=r"override pipeline\.retries: value is not valid YAML"):
        load_config(project, overrides=["pipeline.retries=[1"])
    with pytest.raises(ConfigError, match=r"pipeline\.retries: .*greater than or equal to 0"):
        load_config(project, overrides=["pipeline.retries=-1"])


def test_unknown_stage_in_pipeline_stages(project: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"pipeline\.stages: .*unknown stage\(s\) nope; stages are: templates"
    ):
        load_config(project, overrides=["pipeline.stages=[templates, nope]"])


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: no such params file"):
        load_config(tmp_path / "missing.yaml")


def test_loader_fields_cannot_be_set_in_params(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"override 'root=/x': root: set by load_config"):
        load_config(project, overrides=["root=/x"])


def test_beating_the_expert_needs_an_online_gating_metric(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path)
    with pytest.raises(ConfigError, match="promote: Value error, beat_expert .* online"):
        load_config(
            tmp_path / "params.yaml", overrides=["promote.beat_expert=true", "promote.metric=offline.ssr"]
        )
    cfg = load_config(
        tmp_path / "params.yaml", overrides=["promote.beat_expert=true", "promote.metric=online.tsr"]
    )
    assert cfg.promote.beat_expert


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("collect.out_dir=params.yaml", "is the params file"),
        ("collect.out_dir=.", "is the project root"),
        ("collect.out_dir=..", "holds the project root"),
        ("collect.out_dir=params", "is the profiles folder"),
        ("collect.out_dir=.git/objects", "lies in the project's .git"),
        ("collect.out_dir=mlflow.db", "is the tracking store of tracking.uri"),
        ("judge.out_dir=mlartifacts/x", "lies in the tracking store of tracking.artifact_root"),
        ("collect.out_dir=data/templates", "is templates.out_dir's folder"),
        ("evolve.out_dir=data", "holds collect.sources"),
        ("self_boost.rollouts_dir=infra", "holds train.deepspeed_config"),
        ("train.storage_path=models", "holds plan_pretrain.out_dir's folder"),
        ("datasets.metrics_file=params.yaml", "is a project file"),
    ],
)
def test_an_output_may_not_be_the_project_or_overlap_another(
    project: Path, override: str, message: str
) -> None:
    key = override.partition("=")[0]
    with pytest.raises(
        ConfigError, match=rf"^override '{re.escape(override)}': {re.escape(key)}: .*{message}"
    ):
        load_config(project, overrides=[override])


def test_an_output_folder_may_not_be_an_existing_file(project: Path) -> None:
    (project.parent / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"collect\.out_dir: .*notes\.txt is a file, not an output folder"):
        load_config(project, overrides=["collect.out_dir=notes.txt"])


@pytest.mark.parametrize(
    ("encoding", "message"), [("latin-1", "not UTF-8 text"), ("utf-16", "not UTF-8 text")]
)
def test_a_params_file_that_is_not_utf8_is_one_error(project: Path, encoding: str, message: str) -> None:
    project.write_bytes(("# caf\u00e9\n" + project.read_text()).encode(encoding))
    with pytest.raises(ConfigError, match=rf"params\.yaml: {message}"):
        load_config(project)


def test_a_params_folder_is_one_error(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"params: is a folder, not a params file"):
        load_config(project.parent / "params")


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:///mlflow.db",
        "mlruns",
        "file:///tmp/mlruns",
        "postgresql+psycopg2://u@db/mlflow",
        "mysql://u@db/mlflow",
        "https://mlflow.example",
        "databricks",
    ],
)
def test_tracking_uris_of_mlflow_stores_load(project: Path, uri: str) -> None:
    assert load_config(project, overrides=[f"tracking.uri={uri}"]).tracking.uri == uri


def test_a_tracking_uri_of_an_unknown_scheme_names_the_field(project: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"tracking\.uri: .*no MLflow tracking store for scheme 'nosuchscheme'"
    ):
        load_config(project, overrides=["tracking.uri=nosuchscheme://x"])


def test_an_mlflow_tracking_uri_from_the_environment_of_an_unknown_scheme_fails_at_load(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://user:secret@x")
    with pytest.raises(
        ConfigError, match=r"^\$MLFLOW_TRACKING_URI: no MLflow tracking store for scheme 'nosuch"
    ) as err:
        load_config(project)
    assert "secret" not in str(err.value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg2://u@db/mlflow")
    assert (
        load_config(project).tracking.uri == "sqlite:///mlflow.db"
    )  # params' own, valid; the variable wins later


@pytest.mark.parametrize("cpus", [-1, 0])
def test_ray_needs_a_cpu(project: Path, cpus: int) -> None:
    with pytest.raises(ConfigError, match=r"ray\.num_cpus: .*greater than or equal to 1"):
        load_config(project, overrides=[f"ray.num_cpus={cpus}"])
    assert load_config(project, overrides=["ray.num_cpus=null"]).ray.num_cpus is None


@pytest.mark.parametrize("profile", ["../params", "ci/../ci", "/etc/passwd", ".hidden"])
def test_a_profile_is_a_name_not_a_path(project: Path, profile: str) -> None:
    with pytest.raises(ConfigError, match=r"a profile is the name of a file params/<name>\.yaml"):
        load_config(project, profile=profile)


def test_the_local_training_backend_runs_one_worker(project: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"train.*backend 'local' runs one worker.*num_workers to 1 \(it is 2\)"
    ):
        load_config(project, overrides=["train.backend=local", "train.num_workers=2"])
    assert (
        load_config(project, overrides=["train.backend=local", "train.num_workers=1"]).train.backend
        == "local"
    )
    with pytest.raises(ConfigError, match="train.backend"):
        load_config(project, overrides=["train.backend=slurm"])
