"""Typed configuration, loaded from params.yaml in exactly one place: `load_config`.

params.yaml is the embedded default profile (`tiny`). A profile `params/<name>.yaml` beside it holds only what
differs and is deep-merged over it; `--set section.key=value` overrides come last. Paths in the config are
relative to the project root, the folder of params.yaml: resolve them with `cfg.path(...)`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from lamops.env.observation import CanvasView, ControlFormat, ControlTypes, PromptView
from lamops.io import PROJECT_MARKERS, folder_problems
from lamops.phases import LAM_PHASES, select_stages
from lamops.settings import ModelSpec, PPOConfig, RewardConfig, SFTConfig

DEFAULT_PROFILE = "tiny"
PROFILE_ENV_VAR = "LAMOPS_PROFILE"
TRACKING_URI_ENV_VAR = "MLFLOW_TRACKING_URI"  # when set, it wins over tracking.uri (lamops.tracking)
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # a file name in params/, never a path
# Schemes MLflow has a tracking store for (mlflow.tracking._tracking_service.utils), "" being a plain path; a
# database scheme may name its driver (postgresql+psycopg2).
TRACKING_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")
TRACKING_SCHEMES += ("databricks-uc", "uc")


class ConfigError(ValueError):
    """A params file, profile or override is invalid; the message names the file and the field."""


def tracking_scheme_problem(uri: str) -> str | None:
    """Why MLflow has no tracking store for `uri`, or None. MLflow itself fails on an unknown scheme only
    when the first stage opens its run, with a traceback."""
    scheme = urlparse(uri).scheme.lower().partition("+")[0]
    if scheme in TRACKING_SCHEMES:
        return None
    return (
        f"no MLflow tracking store for scheme {scheme!r}; expected a folder or a URI of "
        f"{', '.join(s for s in TRACKING_SCHEMES if s)}"
    )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectConfig(_Section):
    name: str = Field(description="Project name.")
    seed: int = Field(description="Base random seed of the pipeline.")
    data_dir: Path = Field(description="Folder of all pipeline data, relative to the project root.")


class EnvConfig(_Section):
    max_steps: int = Field(
        gt=0, description="Step limit of an episode; an episode reaching it ends unfinished."
    )
    control_format: ControlFormat = Field(
        description="How an observation lists the visible controls: `names` (one name a line, its label "
        "the line's position; ~1/3 fewer prompt tokens than compact), `compact` (`7:Bold`, ~2.7x fewer "
        "tokens than json) or `json` (the paper's list of {label, control_text, control_type})."
    )
    control_types: ControlTypes = Field(
        description="Which controls show their UI Automation type (`7:Bold:Button`): `ambiguous` only those "
        "whose name another visible control shares (the type is what tells them apart; ~11% of a prompt "
        "otherwise), or `all` (the earlier prompt)."
    )
    canvas: CanvasView = Field(
        description="How much of the document the canvas shows: `window` (the lines holding the selection "
        "and those the request or the previous plan names, at most 6, the rest counted in one line; "
        "lamops.env.window) or `full` (every paragraph, table, header and comment: the earlier prompt, "
        "unbounded on a long document)."
    )

    def view(self) -> PromptView:
        """How observations are rendered into prompts, in training data and by the agents alike."""
        return PromptView(
            control_format=self.control_format, control_types=self.control_types, canvas=self.canvas
        )


class TemplatesConfig(_Section):
    out_dir: Path = Field(description="Where the template documents and index.json go, relative to the root.")


class TrackingConfig(_Section):
    uri: str = Field(
        description="MLflow tracking URI. A relative `sqlite:///file.db` is resolved against the root; "
        "$MLFLOW_TRACKING_URI, when set, wins (a tracking server in cluster mode)."
    )
    artifact_root: str = Field(
        description="Where a new experiment keeps its artifacts: a folder relative to the root, or s3://...; "
        "with a tracking server a local folder is ignored and the server's artifact destination is used."
    )
    experiment: str = Field(description="MLflow experiment of the pipeline's runs.")
    system_metrics_interval_s: float = Field(
        default=10, gt=0, description="Seconds between the system-metric samples of a training phase's run."
    )

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        problem = tracking_scheme_problem(uri)
        if problem:
            raise ValueError(problem)
        return uri


class LLMConfig(_Section):
    provider: Literal["builtin", "openai"] = Field(
        description="Who plays the LLM roles (structure, evolve, prefill, filter, judge): `builtin` "
        "(deterministic, no network) or `openai` (any OpenAI-compatible endpoint)."
    )
    base_url: str = Field(description="Endpoint of the OpenAI-compatible API (openai provider).")
    model: str = Field(description="Model name sent to the endpoint (openai provider).")
    api_key_env: str = Field(
        description="Environment variable holding the API key; the key is never in params."
    )
    timeout_s: float = Field(gt=0, description="Seconds one request may take.")
    max_retries: int = Field(ge=0, description="Retries, with exponential backoff, of a failed request.")
    temperature: float = Field(ge=0, description="Sampling temperature; 0 for reproducible data.")


class RayConfig(_Section):
    address: str | None = Field(
        description="Ray cluster to use; null: $RAY_ADDRESS when set, else a local Ray started in-process."
    )
    num_cpus: int | None = Field(ge=1, description="CPUs of a local Ray (null: all); ignored on a cluster.")


class SourcesConfig(_Section):
    out_dir: Path = Field(description="Where the built-in raw corpus is written (docs/, howto/, queries/).")
    seed: int = Field(description="Seed of the corpus generator.")
    docs_pages: int = Field(ge=0, description="Documentation pages (Markdown) to write.")
    howto_articles: int = Field(ge=0, description="How-to articles (JSON Lines) to write.")
    queries: int = Field(ge=0, description="Search queries to write.")


class CollectConfig(_Section):
    sources: str = Field(
        description="Raw sources to read: a folder relative to the root or `s3://bucket/prefix` "
        "(layout and formats: docs/data-sources.md)."
    )
    s3_endpoint_url: str | None = Field(
        description="S3 endpoint for s3:// sources (null: $AWS_ENDPOINT_URL, else AWS)."
    )
    out_dir: Path = Field(description="Output folder: pairs.jsonl, quarantine.jsonl, stats.json.")
    min_task_chars: int = Field(ge=1, description="Shorter tasks are dropped as too_short.")
    max_task_chars: int = Field(ge=1, description="Longer tasks are dropped as too_long.")
    min_steps: int = Field(ge=1, description="Plans with fewer steps are dropped as too_short.")
    max_steps: int = Field(ge=1, description="Plans with more steps are dropped as too_long.")
    max_plan_chars: int = Field(ge=1, description="Plans longer than this in total are dropped as too_long.")
    near_duplicate_threshold: float = Field(
        gt=0, le=1, description="Jaccard similarity (MinHash, word 3-shingles) at which pairs are duplicates."
    )
    workers: int = Field(
        ge=0,
        description="Ray Data parallelism; 0 runs in-process. On a Ray cluster or for s3:// sources the "
        "workers read the files (Ray Data's reader), else the driver reads them.",
    )


class EvolveConfig(_Section):
    out_dir: Path = Field(description="Output folder: pairs.jsonl (the evolved pairs only), stats.json.")
    ratio: float = Field(ge=0, description="Evolved pairs per collected pair (the paper added 1.5).")
    max_added_words: int = Field(gt=0, description="An added requirement has at most this many words.")
    seed: int = Field(description="Seed of the choice of what to combine.")
    workers: int = Field(ge=0, description="Ray Data parallelism; 0 runs in-process.")


class InstantiateConfig(_Section):
    out_dir: Path = Field(description="Output folder: tasks.jsonl (passed the filter), records.jsonl, ...")
    max_tasks: int = Field(gt=0, description="Task-plan pairs instantiated (a deterministic sample).")
    evolved_share: float = Field(ge=0, le=1, description="Share of the sample drawn from evolved pairs.")
    template_candidates: int = Field(
        gt=0, description="Templates tried in order of similarity until the prefill succeeds (UFO: 1)."
    )
    seed: int = Field(description="Seed of the sample and of the concrete content chosen.")
    workers: int = Field(ge=0, description="Ray workers for the prefill and filter; 0 runs in-process.")


class ExecuteConfig(_Section):
    out_dir: Path = Field(description="Output folder: one trajectory and final document per task id.")
    workers: int = Field(
        ge=0, description="Ray workers (at most that many at once), one environment each; 0 runs in-process."
    )
    batch_size: int = Field(gt=0, description="Tasks sent to a worker at a time.")
    min_score: float = Field(ge=0, le=100, description="Fuzzy-match score below which a step cannot ground.")


class JudgeConfig(_Section):
    out_dir: Path = Field(description="Output folder: judged.jsonl and UFO results/{pass,fail,unsure}.jsonl.")
    workers: int = Field(ge=0, description="Ray workers; 0 runs in-process.")


class DatasetsConfig(_Section):
    out_dir: Path = Field(description="Output folder of the training and test sets.")
    test_fraction: float = Field(gt=0, lt=1, description="Share of task lineages in the frozen test split.")
    split_salt: str = Field(description="Salt of the split hash; changing it re-draws (unfreezes) the split.")
    metrics_file: Path = Field(description="DVC metrics file with every data stage's counts.")
    negatives_seed: int = Field(
        description="Seed of the reward set's hard negatives (which states, which mistakes)."
    )


class TrainConfig(_Section):
    """Where and on what every training phase runs: hardware, never hyperparameters."""

    deepspeed_config: Path = Field(
        description="DeepSpeed JSON (ZeRO stage, offload, precision), relative to the root: infra/deepspeed/."
    )
    backend: Literal["ray", "local"] = Field(
        default="ray",
        description="ray: Ray Train workers (the cluster path); local: the loop in the stage's own process "
        "as the one worker (num_workers 1), no Ray start-up: for one-machine debugging and small profiles.",
    )
    num_workers: int = Field(ge=1, description="Ray Train workers (one process each; one GPU each on GPU).")
    use_gpu: bool = Field(description="One GPU per worker and NCCL; false: CPU workers and gloo.")
    cpus_per_worker: float = Field(gt=0, description="CPUs Ray reserves for each worker.")
    storage_path: str = Field(
        description="Checkpoints of the phases' Ray Train runs: a folder relative to the root, or s3://..."
    )
    checkpoint_every: int = Field(ge=1, description="Optimizer steps between checkpoints.")
    max_failures: int = Field(ge=-1, description="Ray Train restarts of a failed run; -1: no limit.")
    keep_checkpoints: bool = Field(
        description="Keep a phase's checkpoints after it published its model (false: delete them)."
    )

    @model_validator(mode="after")
    def _local_runs_one_worker(self) -> TrainConfig:
        if self.backend == "local" and self.num_workers != 1:
            raise ValueError(
                f"train.backend 'local' runs one worker in the stage's process: set train.num_workers to 1 "
                f"(it is {self.num_workers}) or train.backend to 'ray'"
            )
        return self


class PlanPretrainConfig(_Section):
    out_dir: Path = Field(description="LAM1 (model + tokenizer, save_pretrained layout).")
    sft: SFTConfig = Field(description="SFT hyperparameters: task -> plan, loss on the plan only.")


class ImitateConfig(_Section):
    out_dir: Path = Field(description="LAM2 (model + tokenizer, save_pretrained layout).")
    sft: SFTConfig = Field(description="SFT hyperparameters: observation -> expert action, from LAM1.")


class SelfBoostConfig(_Section):
    out_dir: Path = Field(description="LAM3 (model + tokenizer, save_pretrained layout).")
    rollouts_dir: Path = Field(
        description="LAM2's retries: every rollout, the successful trajectories, the SFT rows they add, "
        "per-family counts."
    )
    attempts: int = Field(ge=1, description="Sampled attempts of LAM2 per expert-failed training task.")
    temperature: float = Field(gt=0, description="Sampling temperature of the attempts.")
    max_steps: int = Field(
        ge=1, description="Step limit of a retry episode (expert trajectories: median 3 steps, p95 7)."
    )
    batch_size: int = Field(ge=1, description="Episodes stepped in lockstep (one batched decode) per worker.")
    workers: int = Field(ge=0, description="Ray actors playing the episodes; 0 runs them in-process.")
    max_tasks: int | None = Field(
        ge=1, description="Retry at most this many tasks (in file order); null: all."
    )
    seed: int = Field(description="Seed of the attempts' sampling.")
    sft: SFTConfig = Field(description="SFT hyperparameters: expert steps + new successes, from LAM2.")


class RewardHeadConfig(_Section):
    """The logistic head over the classifier's score and LAM3's grammar-constrained view of the action
    (lamops.train.reward_head)."""

    max_rows: int = Field(
        default=1200,
        ge=2,
        description="Training rows the head is fitted on, drawn with rm.seed (all if fewer).",
    )
    l2: float = Field(
        default=1.0, ge=0, description="L2 penalty on the head's weights (standardised features)."
    )


class RewardModelConfig(_Section):
    out_dir: Path = Field(
        description="The reward model: the LoRA-merged classifier (save_pretrained layout), LAM3 in policy/ "
        "and the grammar head (lamops_reward_head.json)."
    )
    head: RewardHeadConfig = Field(
        default_factory=RewardHeadConfig,
        description="The head fitted over the classifier's score and LAM3's grammar-constrained features.",
    )
    rm: RewardConfig = Field(description="Reward-model hyperparameters: LoRA, MSE to the +-1 step labels.")
    held_out_fraction: float = Field(
        ge=0,
        lt=1,
        description="Share of self-boost's retried tasks (by a hash of the id) whose rollouts are held out: "
        "never trained on, with the expert's steps on them, and scored as the held-out policy mistakes.",
    )


class GuardConfig(_Section):
    """The check after offline PPO that LAM4 is no worse than LAM3 (lamops.evaluation.guard)."""

    enabled: bool = Field(
        description="Decode a slice of training steps with LAM3 and PPO's candidate; publish LAM3's weights "
        "as LAM4 when the candidate agrees with the reference actions less (false: publish the candidate)."
    )
    max_rows: int = Field(
        ge=1,
        description="Steps of the slice, from datasets/sft/train.jsonl (never the test split): whole tasks "
        "in a fixed hash order of their ids until this many; each of the two models decodes them all.",
    )
    tolerance: float = Field(
        ge=0, description="SSR points the candidate may fall below LAM3 on the slice and still be LAM4."
    )
    batch_size: int = Field(ge=1, description="Steps decoded in lockstep.")


class OfflineRLConfig(_Section):
    out_dir: Path = Field(description="LAM4 (model + tokenizer, save_pretrained layout).")
    ppo: PPOConfig = Field(description="Offline PPO hyperparameters (lamops.train.offline_rl).")
    guard: GuardConfig = Field(description="LAM3 instead of a candidate that does worse on training steps.")


Phase = Literal[LAM_PHASES]  # lam1 .. lam4, from the phase table


class EvaluateConfig(_Section):
    """Stage `evaluate`: the phases and the expert on the frozen test split, offline and online."""

    metrics_dir: Path = Field(
        description="DVC metrics folder: one <phase>.json per evaluated phase and expert.json."
    )
    out_dir: Path = Field(
        description="Reports: per-episode and per-step records, DVC plot data, the phase table, figures."
    )
    phases: tuple[Phase, ...] = Field(description="Phases evaluated (their models: each stage's out_dir).")
    batch_size: int = Field(ge=1, description="Prompts (offline) or episodes (online) decoded in lockstep.")
    offline_max_rows: int | None = Field(
        ge=1, description="Teacher-forced steps scored per phase, whole test tasks in file order; null: all."
    )
    planning_max_tasks: int | None = Field(
        ge=1, description="LAM1 plans generated from the test tasks (in file order); null: all."
    )
    planning_max_new_tokens: int = Field(ge=8, description="Longest generated plan, in tokens.")
    planning_judge: Literal["matcher", "llm"] = Field(
        description="Who decides a plan's task success: `matcher` (all reference steps matched, "
        "deterministic) or `llm` (the judge of the `llm` section, as the paper's GPT-4o judge)."
    )
    match_threshold: float = Field(
        ge=0, le=100, description="Fuzzy score (0-100) at which a predicted plan step's element matches."
    )
    online_max_tasks: int | None = Field(
        ge=1, description="Test tasks run live per phase (in file order); null: all."
    )
    max_steps: int = Field(ge=1, description="Step limit of an online episode.")
    workers: int = Field(ge=0, description="Ray actors playing online episodes; 0 runs them in-process.")
    seed: int = Field(description="Seed of the online episodes (decoding is greedy; ties only).")


class PromoteConfig(_Section):
    """`promote`: gate this run's best phase against thresholds and the champion, then move aliases."""

    registered_model: str = Field(
        description="The deployable registered model candidates become versions of."
    )
    metric: str = Field(
        description="Metric (a key of metrics/<phase>.json, e.g. online.tsr) picking this run's best phase."
    )
    thresholds: dict[str, float] = Field(
        description="Minimum of each metric (metrics/<phase>.json keys, rates in %) a candidate must reach."
    )
    no_regression: tuple[str, ...] = Field(
        description="Metrics on which the candidate may not fall more than `tolerance` below the champion."
    )
    tolerance: float = Field(ge=0, description="Allowed fall below the champion, in the metric's units.")
    beat_expert: bool = Field(
        description="Also require the candidate's gating metric to be at least the expert's."
    )

    @model_validator(mode="after")
    def _expert_has_the_metric(self) -> PromoteConfig:
        # metrics/expert.json holds online metrics only: the test split's reference actions are the expert's.
        if self.beat_expert and not self.metric.startswith("online."):
            raise ValueError(
                f"beat_expert compares the gating metric with the expert's, which has online.* metrics only; "
                f"metric is {self.metric!r}: use an online.* metric or set beat_expert: false"
            )
        return self


class PipelineConfig(_Section):
    stages: tuple[str, ...] = Field(description="Stages `lamops pipeline` runs when --stages is not given.")
    retries: int = Field(ge=0, description="How often the flow retries a failed stage.")
    retry_delay_s: float = Field(ge=0, description="Seconds between a stage's failure and its retry.")
    timeout_s: float = Field(gt=0, description="A stage running longer than this many seconds fails.")
    stage_retries: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="Retries of particular stages, by stage name (others: `retries`)."
    )
    stage_timeout_s: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="Timeouts of particular stages in seconds, by stage name (others: `timeout_s`).",
    )
    skip_unchanged: bool = Field(
        default=True,
        description="Skip a stage whose params, deps and outs are unchanged since its last successful run "
        "under this profile (lamops.stages.fingerprint); `--force` runs it anyway.",
    )

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, stages: tuple[str, ...]) -> tuple[str, ...]:
        return select_stages(stages)

    @field_validator("stage_retries", "stage_timeout_s")
    @classmethod
    def _keys_are_stages(cls, by_stage: dict[str, Any]) -> dict[str, Any]:
        if by_stage:
            select_stages(by_stage)  # an unknown name raises, listing the stages
        return by_stage

    def retries_of(self, stage: str) -> int:
        return self.stage_retries.get(stage, self.retries)

    def timeout_of(self, stage: str) -> float:
        return self.stage_timeout_s.get(stage, self.timeout_s)


class RemoteConfig(_Section):
    """The DVC remote that shares the pipeline's data and models (`lamops.remote`, `lamops remote ...`).

    Written to .dvc/config.local, not the committed .dvc/config: bucket and endpoint differ per deployment.
    Credentials come only from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...).
    """

    name: str = Field(pattern=r"^[a-z0-9_-]+$", description="Name of the DVC remote (lower case).")
    url: str | None = Field(
        description="`s3://bucket/prefix` the pipeline's outputs are pushed to; $LAMOPS_REMOTE_URL wins; "
        "null: no remote (push and pull fail saying so)."
    )
    endpoint_url: str | None = Field(
        description="S3-compatible endpoint (MinIO, Ceph, moto); $LAMOPS_REMOTE_ENDPOINT_URL, then "
        "$AWS_ENDPOINT_URL win; null: AWS."
    )
    connect_timeout_s: float = Field(
        gt=0, description="Seconds the reachability check before push and pull waits for the endpoint."
    )

    @field_validator("url")
    @classmethod
    def _s3_url(cls, url: str | None) -> str | None:
        if url is not None and not (url.startswith("s3://") and url[5:].split("/")[0]):
            raise ValueError(f"expected s3://bucket/prefix, got {url!r}")
        return url


class Config(_Section):
    project: ProjectConfig = Field(description="Settings shared by every stage.")
    env: EnvConfig = Field(description="The built-in Word-like environment.")
    tracking: TrackingConfig = Field(description="MLflow tracking of every stage.")
    llm: LLMConfig = Field(description="The LLM roles of data building.")
    ray: RayConfig = Field(description="Where Ray work runs.")
    templates: TemplatesConfig = Field(description="Stage `templates`: the environment's template documents.")
    sources: SourcesConfig = Field(description="Stage `sources`: the built-in raw corpus.")
    collect: CollectConfig = Field(description="Stage `collect`: raw sources -> clean task-plan pairs.")
    evolve: EvolveConfig = Field(description="Stage `evolve`: harder variants of collected pairs.")
    instantiate: InstantiateConfig = Field(description="Stage `instantiate`: pairs -> concrete tasks.")
    execute: ExecuteConfig = Field(description="Stage `execute`: the expert runs every task.")
    judge: JudgeConfig = Field(description="Stage `judge`: complete yes / no / unsure per trajectory.")
    datasets: DatasetsConfig = Field(description="Stage `datasets`: SFT, reward and plan sets, splits.")
    model: ModelSpec = Field(description="The base model LAM1 starts from: the tiny default or a local one.")
    train: TrainConfig = Field(description="Hardware of every training phase (Ray Train + DeepSpeed).")
    plan_pretrain: PlanPretrainConfig = Field(description="Stage `plan_pretrain`: LAM1, task -> plan SFT.")
    imitate: ImitateConfig = Field(description="Stage `imitate`: LAM2, SFT on the expert's steps.")
    self_boost: SelfBoostConfig = Field(description="Stage `self_boost`: LAM3, LAM2's retries + SFT.")
    reward_model: RewardModelConfig = Field(description="Stage `reward_model`: LAM3 + scalar head, LoRA.")
    offline_rl: OfflineRLConfig = Field(description="Stage `offline_rl`: LAM4, offline PPO against the RM.")
    evaluate: EvaluateConfig = Field(description="Stage `evaluate`: planning, offline and online metrics.")
    promote: PromoteConfig = Field(description="`promote`: gated registration of the best phase as champion.")
    pipeline: PipelineConfig = Field(description="How the Prefect flow runs the stages.")
    remote: RemoteConfig = Field(description="DVC remote of data and models: `lamops remote ...`.")
    root: Path = Field(description="Project root, the folder of params.yaml; set by load_config.")
    profile: str = Field(description="Profile merged over params.yaml (`tiny`: none); set by load_config.")

    def path(self, path: str | Path) -> Path:
        """`path` from the config resolved against the project root (absolute paths stay as they are)."""
        return self.root / path


_LOADER_FIELDS = ("root", "profile")


def load_config(
    params: str | Path = "params.yaml", profile: str | None = None, overrides: Sequence[str] = ()
) -> Config:
    """Read `params`, deep-merge profile `params/<profile>.yaml` beside it (default: $LAMOPS_PROFILE, else
    none), apply `section.key=value` overrides (values parsed as YAML), and validate.

    Raises ConfigError naming the file (or override) and the field at fault.
    """
    params = Path(params)
    data = _read_yaml(params)
    # Which file or override set each key, so that an error names where to fix it.
    origins: dict[tuple[str, ...], str] = {(): str(params)}

    profile = profile or os.environ.get(PROFILE_ENV_VAR) or DEFAULT_PROFILE
    if not PROFILE_NAME.fullmatch(profile):
        raise ConfigError(
            f"profile {profile!r}: a profile is the name of a file params/<name>.yaml (letters, digits, "
            "_ and -), not a path"
        )
    if profile != DEFAULT_PROFILE:
        profile_file = params.parent / "params" / f"{profile}.yaml"
        if not profile_file.is_file():
            known = [
                f"{DEFAULT_PROFILE} ({params.name})",
                *sorted(p.stem for p in profile_file.parent.glob("*.yaml")),
            ]
            raise ConfigError(f"unknown profile {profile!r}: no {profile_file}; profiles: {', '.join(known)}")
        _merge(data, _read_yaml(profile_file), str(profile_file), origins)

    for override in overrides:
        _merge(data, _parse_override(override), f"override {override!r}", origins)

    for key in _LOADER_FIELDS:
        if key in data:
            raise ConfigError(
                f"{_origin((key,), origins)}: {key}: set by load_config, not in params; remove it"
            )
    try:
        cfg = Config.model_validate({**data, "root": params.resolve().parent, "profile": profile})
    except ValidationError as err:
        raise ConfigError("; ".join(_describe(error, origins) for error in err.errors())) from None
    env_uri = os.environ.get(TRACKING_URI_ENV_VAR)
    if env_uri and (problem := tracking_scheme_problem(env_uri)):  # it wins over tracking.uri: same check
        raise ConfigError(f"${TRACKING_URI_ENV_VAR}: {problem}")  # not the value: it may hold a password
    problems = [
        (_origin(tuple(key.split(".")), origins), key, problem)
        for key, problem in _output_problems(cfg, params)
    ]
    if problems:  # what a profile or an override set first: it is likelier the cause than params.yaml
        problems.sort(key=lambda found: found[0] == str(params))
        raise ConfigError("; ".join(f"{origin}: {key}: {problem}" for origin, key, problem in problems))
    return cfg


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such params file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a params file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the params file: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save the params file as UTF-8"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def _output_problems(cfg: Config, params: Path) -> Iterator[tuple[str, str]]:
    """(setting, what is wrong) for each output that writing would destroy something else with.

    A stage replaces its output folder whole (io.replace_dir; train.storage_path: a phase's checkpoints are
    deleted in it), so io.folder_problems holds the output folders apart from the project root, its params,
    DVC and git files, the tracking store, the inputs no stage writes, and each other. A file a stage writes
    beside others (datasets.metrics_file, evaluate.metrics_dir) may not be one of those project files.
    """
    root = cfg.root
    files = {params.resolve(): "the params file"}
    for name in (*PROJECT_MARKERS, "dvc.lock"):
        files.setdefault(root / name, f"the project's {name}")
    files[root / "params"] = "the profiles folder"
    kept = [(what, path, ()) for path, what in files.items()]
    kept += [(f"the tracking store of {key}", path, ()) for key, path in _tracking_paths(cfg)]
    if "://" not in cfg.collect.sources:  # it may be the sources stage's output, nothing else's
        kept.append(("collect.sources", _resolve(cfg, cfg.collect.sources), ("sources.out_dir",)))
    kept.append(("train.deepspeed_config", _resolve(cfg, cfg.train.deepspeed_config), ()))
    yield from folder_problems(root, list(_output_folders(cfg)), kept)
    written = {
        "datasets.metrics_file": cfg.datasets.metrics_file,
        "evaluate.metrics_dir": cfg.evaluate.metrics_dir,
    }
    for key, value in written.items():
        path = _resolve(cfg, value)
        if path == root or any(path == other for _, other, _ in kept):
            yield key, f"{path} is a project file or folder, not an output"


def _output_folders(cfg: Config) -> Iterator[tuple[str, Path]]:
    """(setting, resolved folder) of every folder a stage replaces whole: each section's out_dir and
    rollouts_dir, and train.storage_path when local."""
    for name in type(cfg).model_fields:
        section = getattr(cfg, name)
        for key in ("out_dir", "rollouts_dir"):
            if isinstance(getattr(section, key, None), Path):
                yield f"{name}.{key}", _resolve(cfg, getattr(section, key))
    if "://" not in cfg.train.storage_path:
        yield "train.storage_path", _resolve(cfg, cfg.train.storage_path)


def _tracking_paths(cfg: Config) -> Iterator[tuple[str, Path]]:
    """The local files of the tracking store: the sqlite database or file store, and the artifact root."""
    for key, uri in (
        ("tracking.uri", cfg.tracking.uri),
        ("tracking.artifact_root", cfg.tracking.artifact_root),
    ):
        parsed = urlparse(uri)
        scheme = parsed.scheme.lower()
        if scheme == "sqlite" and uri[len("sqlite:///") :]:
            yield key, _resolve(cfg, uri[len("sqlite:///") :])
        elif scheme == "file":
            yield key, _resolve(cfg, parsed.path)
        elif not scheme:
            yield key, _resolve(cfg, uri)


def _resolve(cfg: Config, path: str | Path) -> Path:
    return cfg.path(path).resolve()


def _parse_override(override: str) -> dict[str, Any]:
    """`a.b=value` -> {"a": {"b": value}}, the value parsed as YAML."""
    key, sep, raw = override.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"override {override!r}: expected section.key=value")
    try:
        value: Any = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(
            f"override {key.strip()}: value is not valid YAML: {err}".replace("\n", " ")
        ) from None
    for part in reversed(parts):
        value = {part: value}
    return value


def _merge(
    base: dict[str, Any],
    update: Mapping[str, Any],
    origin: str,
    origins: dict[tuple[str, ...], str],
    prefix: tuple[str, ...] = (),
) -> None:
    """Deep-merge `update` into `base`: mappings merge key by key, anything else replaces."""
    for key, value in update.items():
        path = (*prefix, key)
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value, origin, origins, path)
            continue
        base[key] = value
        for stale in [p for p in origins if p[: len(path)] == path]:
            del origins[stale]
        origins[path] = origin


def _describe(error: ErrorDetails, origins: Mapping[tuple[str, ...], str]) -> str:
    """One pydantic error as `<file>: <section.key>: <message>`, the file being the one that set the key."""
    loc = tuple(str(part) for part in error["loc"])
    got = error["input"]
    shown = (
        f" (got {got!r})" if error["type"] != "missing" and isinstance(got, str | int | float | bool) else ""
    )
    return f"{_origin(loc, origins)}: {'.'.join(loc)}: {error['msg']}{shown}"


def _origin(loc: tuple[str, ...], origins: Mapping[tuple[str, ...], str]) -> str:
    """The file or override that set `loc`, or the nearest section above it."""
    return next(origins[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in origins)
