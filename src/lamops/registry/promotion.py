"""Registry IO around the gating policy: read the phases' metrics, register this run's best phase as a version
of the deployable model (`lam`), gate it and move the aliases.

A run's candidate is the phase with the best gating metric (`lamops.registry.gating.choose_candidate`).
Its model folder is logged in an MLflow run `promote` and registered as a new version of
`promote.registered_model`, tagged with its phase, its source version (`lam4/<version>`), lineage, model sha
and every metric (`lamops.metric.<name>`): the next promotion reads the champion's metrics from those tags,
so a decision depends only on the registry and this run's metrics files. Pass: `champion` moves to the new
version and the old champion gets `previous-champion`. Fail: the new version gets `rejected` and
`lamops.rejected_reasons`; the champion is untouched.

Re-runs register nothing twice. When the candidate's model (same `lamops.model_sha`) already holds
`champion`, the promotion is "already champion" and passes without a new version, so re-running the pipeline
when nothing changed leaves the registry as it was. When it is another existing version (say one rejected
earlier), that version is gated again on the current metrics and its tags and aliases updated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from lamops.registry.gating import Decision, Policy, choose_candidate, decide

if TYPE_CHECKING:
    from lamops.config import Config
    from lamops.tracking import StageRun

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"
REJECTED = "rejected"
PHASE_TAG = "lamops.phase"
SOURCE_TAG = "lamops.source"
METRIC_TAG_PREFIX = "lamops.metric."
DECISION_TAG = "lamops.decision"
REJECTED_REASONS_TAG = "lamops.rejected_reasons"
EXPERT = "expert"
# Only the input/output types matter to the inferred signature (text in, text out, max_new_tokens param).
SIGNATURE_EXAMPLE = ("task and screen", '{"function": "click"}')
_TAG_VALUE_LIMIT = 5000  # MLflow's limit on a model version tag's value
_HOW_TO_FIX = "run `lamops evaluate` (or `dvc repro evaluate`) first"


class PhaseMetrics(BaseModel):
    """One metrics/<phase>.json file, flattened: numbers under dotted names (`offline.tsr`)."""

    model_config = ConfigDict(extra="forbid")

    phase: str = Field(description="lam1 ... lam4, or expert.")
    model_dir: Path | None = Field(description="The phase's save_pretrained folder, relative to the root.")
    metrics: dict[str, float] = Field(description="Every numeric value of the file by dotted name.")


class PromotionResult(BaseModel):
    """What `promote` did."""

    model_config = ConfigDict(extra="forbid")

    candidate: str = Field(description="The phase chosen as this run's candidate (lam1 ... lam4).")
    registered_model: str = Field(description="The deployable registered model, e.g. lam.")
    version: int = Field(description="The candidate's version of `registered_model`.")
    model_uri: str = Field(description="models:/<registered_model>/<version>.")
    source: str = Field(description="The candidate's own registered version (lam4/3), or lam4/unregistered.")
    metric: str = Field(description="The gating metric.")
    value: float = Field(description="The candidate's gating metric.")
    passed: bool = Field(description="Whether the candidate is (now) the champion.")
    already_champion: bool = Field(description="The same model already held `champion`: nothing registered.")
    reused: bool = Field(description="An existing version with the same model was gated again: none new.")
    reasons: list[str] = Field(description="Why the candidate was rejected; empty when it passed.")
    notes: list[str] = Field(description="Checks skipped, and why.")
    checks: dict[str, bool] = Field(description="Every check made, by name -> passed.")
    champion_before: int | None = Field(description="Version holding `champion` before; None if none.")
    champion_after: int | None = Field(description="Version holding `champion` after.")


def read_phase_metrics(metrics_dir: Path, phases: Iterable[str]) -> dict[str, PhaseMetrics]:
    """The metrics files `metrics_dir/<phase>.json` of `phases`, by phase, in the order given.

    Raises FileNotFoundError or ValueError naming the file that is missing or not a metrics object."""
    found: dict[str, PhaseMetrics] = {}
    for phase in phases:
        path = Path(metrics_dir) / f"{phase}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing metrics of {phase}; {_HOW_TO_FIX}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error}); {_HOW_TO_FIX}") from error
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of metrics, got {type(data).__name__}")
        if data.get("phase", phase) != phase:
            raise ValueError(f"{path}: holds the metrics of {data['phase']!r}, not {phase!r}; {_HOW_TO_FIX}")
        model_dir = data.get("model_dir")
        found[phase] = PhaseMetrics(
            phase=phase,
            model_dir=Path(model_dir) if isinstance(model_dir, str) and model_dir else None,
            metrics=_numbers(data),
        )
    return found


def _numbers(data: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_numbers(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def metric_tags(metrics: dict[str, float]) -> dict[str, str]:
    """`lamops.metric.<name>` = value for each metric (NaN is left out: it cannot be compared)."""
    return {f"{METRIC_TAG_PREFIX}{k}": repr(v) for k, v in metrics.items() if not math.isnan(v)}


def metrics_from_tags(tags: dict[str, str]) -> dict[str, float]:
    """The metrics a version was promoted with, read back from its `lamops.metric.*` tags."""
    out: dict[str, float] = {}
    for key, value in tags.items():
        if key.startswith(METRIC_TAG_PREFIX):
            try:
                out[key[len(METRIC_TAG_PREFIX) :]] = float(value)
            except ValueError:
                continue  # a hand-set tag that is not a number: treated as absent
    return out


def promote(cfg: Config) -> PromotionResult:
    """Choose this run's candidate phase, register it as a version of `cfg.promote.registered_model`, gate it
    against the thresholds, the champion and (optionally) the expert, and move the aliases (module doc)."""
    from lamops.registry.models import MODEL_SHA_TAG, find_version, get_alias, model_sha, version_tags
    from lamops.tracking import stage_run

    policy = Policy.from_config(cfg.promote)
    name = cfg.promote.registered_model
    metrics_dir = cfg.path(cfg.evaluate.metrics_dir)
    phases = read_phase_metrics(metrics_dir, cfg.evaluate.phases)
    expert = None
    if policy.beat_expert:
        expert = read_phase_metrics(metrics_dir, [EXPERT])[EXPERT].metrics
    phase = choose_candidate({p: record.metrics for p, record in phases.items()}, policy.metric)
    candidate = phases[phase]
    if candidate.model_dir is None:
        raise ValueError(f"{metrics_dir / f'{phase}.json'}: no model_dir to promote; {_HOW_TO_FIX}")
    model_dir = cfg.path(candidate.model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{model_dir}: no save_pretrained model of {phase} (named by {metrics_dir / f'{phase}.json'}); "
            f"re-run the stage that trains {phase} (`dvc repro`)"
        )
    sha = model_sha(model_dir)

    with stage_run(cfg, "promote") as tracked:
        # The registry is read inside the run: stage_run points MLflow at the configured store.
        source_version = find_version(phase, MODEL_SHA_TAG, sha)
        source = f"{phase}/{source_version if source_version is not None else 'unregistered'}"
        champion_before = get_alias(name, CHAMPION)
        common = {
            "candidate": phase,
            "registered_model": name,
            "source": source,
            "metric": policy.metric,
            "value": candidate.metrics[policy.metric],
            "champion_before": champion_before,
        }
        tracked.log_params({"candidate_phase": phase, "source": source})
        tracked.log_metrics(candidate.metrics)

        if champion_before is not None and version_tags(name, champion_before).get(MODEL_SHA_TAG) == sha:
            result = PromotionResult(
                **common,
                version=champion_before,
                model_uri=f"models:/{name}/{champion_before}",
                passed=True,
                already_champion=True,
                reused=True,
                reasons=[],
                notes=[f"{phase}'s model is already the champion, {name} v{champion_before}"],
                checks={},
                champion_after=champion_before,
            )
            _log_decision(tracked, result)
            return result

        version, reused = _version_for(cfg, name, phase, source, sha, model_dir, candidate.metrics)
        champion_metrics, notes = None, []
        if champion_before is not None:
            champion_metrics = metrics_from_tags(version_tags(name, champion_before))
            if not champion_metrics:
                notes.append(
                    f"champion v{champion_before} has no {METRIC_TAG_PREFIX}* tags: compared as no metrics"
                )
        decision = decide(
            candidate.metrics, champion_metrics, expert, policy, champion_version=champion_before
        )
        champion_after = _apply(name, version, decision, champion_before)
        result = PromotionResult(
            **common,
            version=version,
            model_uri=f"models:/{name}/{version}",
            passed=decision.passed,
            already_champion=False,
            reused=reused,
            reasons=decision.reasons,
            notes=[*notes, *decision.notes],
            checks=decision.checks,
            champion_after=champion_after,
        )
        _log_decision(tracked, result)
        return result


def _version_for(
    cfg: Config, name: str, phase: str, source: str, sha: str, model_dir: Path, metrics: dict[str, float]
) -> tuple[int, bool]:
    """The version of `name` holding this model: an existing one (tags refreshed), else a new one logged
    and registered in the active run. Returns (version, reused)."""
    from lamops.registry.models import (
        MODEL_SHA_TAG,
        find_version,
        lineage_tags,
        log_and_register,
        tag_version,
        version_tags,
    )
    from mlflow import MlflowClient

    tags = {PHASE_TAG: phase, SOURCE_TAG: source, **metric_tags(metrics)}
    existing = find_version(name, MODEL_SHA_TAG, sha)
    if existing is not None:
        # Same weights already registered: re-gate that version on today's metrics instead of a duplicate.
        for key in version_tags(name, existing):
            if key.startswith(METRIC_TAG_PREFIX) and key not in tags:
                MlflowClient().delete_model_version_tag(name, str(existing), key)
        for key, value in tags.items():
            tag_version(name, existing, key, value)
        return existing, True
    tags.update(lineage_tags(cfg.root, [str(cfg.datasets.out_dir)]))
    tags[MODEL_SHA_TAG] = sha
    registered = log_and_register(
        model_dir, name, tags=tags, parent=None, signature_example=SIGNATURE_EXAMPLE
    )
    return registered.version, False


def _apply(name: str, version: int, decision: Decision, champion_before: int | None) -> int | None:
    """Tag the decision on `version` and move the aliases; returns the champion's version after."""
    from lamops.registry.models import delete_alias, get_alias, set_alias, tag_version, version_tags
    from mlflow import MlflowClient

    tag_version(name, version, DECISION_TAG, "passed" if decision.passed else "rejected")
    if not decision.passed:
        tag_version(name, version, REJECTED_REASONS_TAG, "; ".join(decision.reasons)[:_TAG_VALUE_LIMIT])
        set_alias(name, REJECTED, version)
        return champion_before
    set_alias(name, CHAMPION, version)
    if champion_before is not None and champion_before != version:
        set_alias(name, PREVIOUS_CHAMPION, champion_before)
    if get_alias(name, REJECTED) == version:  # a re-gated version that failed before
        delete_alias(name, REJECTED)
    if REJECTED_REASONS_TAG in version_tags(name, version):
        MlflowClient().delete_model_version_tag(name, str(version), REJECTED_REASONS_TAG)
    return version


def _log_decision(tracked: StageRun, result: PromotionResult) -> None:
    tracked.log_params({"version": result.version})
    tracked.log_metrics({"passed": int(result.passed), "version": result.version})
    tracked.log_json(result.model_dump(mode="json"), "promotion.json")
    tracked.log_text(to_markdown(result), "promotion.md")


def to_markdown(result: PromotionResult) -> str:
    """A short human summary of a promotion."""
    verdict = "already champion" if result.already_champion else "passed" if result.passed else "rejected"
    before = f"v{result.champion_before}" if result.champion_before is not None else "none"
    after = f"v{result.champion_after}" if result.champion_after is not None else "none"
    lines = [
        f"# Promotion: {result.candidate} -> {result.registered_model} v{result.version}: {verdict}",
        "",
        f"- candidate: {result.candidate} ({result.source}), {result.metric} = {result.value:.1f}",
        f"- champion: {before} -> {after}",
    ]
    if result.checks:
        lines += ["", "| check | passed |", "| --- | --- |"]
        lines += [f"| {check} | {'yes' if ok else 'no'} |" for check, ok in result.checks.items()]
    if result.reasons:
        lines += ["", "Reasons:", *[f"- {reason}" for reason in result.reasons]]
    if result.notes:
        lines += ["", "Notes:", *[f"- {note}" for note in result.notes]]
    return "\n".join(lines) + "\n"
