"""The promotion policy: which phase of a run is the candidate, and whether it may become the champion.

Pure functions of metrics (flat dicts, dotted names as in metrics/<phase>.json: `offline.tsr`, `online.tsr`,
rates in percent); `lamops.registry.promotion` reads the metrics and moves the registry aliases around them.
A candidate passes when it meets every threshold, falls no more than `tolerance` below the champion on each
`no_regression` metric, and, with `beat_expert`, reaches the expert on the gating metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lamops.config import PromoteConfig

# Slack in the regression check: metrics are rounded percentages, and 42.1 - 2.0 is 40.10000000000001.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Policy:
    """What a candidate must reach: `thresholds` (minimum per metric), no fall of more than `tolerance` below
    the champion on each of `no_regression`, and with `beat_expert` the expert's value of `metric`, the
    gating metric that also picks the candidate phase."""

    metric: str
    thresholds: dict[str, float] = field(default_factory=dict)
    no_regression: tuple[str, ...] = ()
    tolerance: float = 0.0
    beat_expert: bool = False

    @classmethod
    def from_config(cls, promote: PromoteConfig) -> Policy:
        return cls(
            metric=promote.metric,
            thresholds=dict(promote.thresholds),
            no_regression=tuple(promote.no_regression),
            tolerance=promote.tolerance,
            beat_expert=promote.beat_expert,
        )


@dataclass(frozen=True)
class Decision:
    """The verdict on one candidate.

    `reasons`: one sentence per failed check (empty when `passed`). `checks`: every check made, by name
    (`threshold:<metric>`, `no_regression:<metric>`, `beat_expert:<metric>`) -> passed. `notes`: checks that
    could not be made and were skipped, e.g. a metric the champion lacks.
    """

    passed: bool
    reasons: list[str]
    checks: dict[str, bool]
    notes: list[str] = field(default_factory=list)


def choose_candidate(metrics_by_phase: Mapping[str, Mapping[str, float]], metric: str) -> str:
    """The phase with the highest `metric`; `metrics_by_phase` is in pipeline order (lam1 ... lam4).

    A tie goes to the later phase: later phases are the paper's intended product (LAM4 builds on LAM3, and so
    on), so they win unless an earlier one is strictly better. A phase lacking `metric` (or holding NaN) is an
    error naming it: the gate must not silently skip a phase.
    """
    if not metrics_by_phase:
        raise ValueError("no phase metrics to choose a candidate from; run `lamops evaluate` first")
    best: str | None = None
    best_value = -math.inf
    for phase, metrics in metrics_by_phase.items():
        if metric not in metrics:
            known = ", ".join(sorted(metrics)) or "none"
            raise ValueError(f"phase {phase} has no metric {metric!r} (its metrics: {known})")
        value = float(metrics[metric])
        if math.isnan(value):
            raise ValueError(f"phase {phase}: metric {metric!r} is NaN; re-run `lamops evaluate`")
        if value >= best_value:
            best, best_value = phase, value
    assert best is not None
    return best


def decide(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    expert: Mapping[str, float] | None,
    policy: Policy,
    *,
    champion_version: int | None = None,
) -> Decision:
    """Gate `candidate` against `policy`, the `champion`'s metrics (None: there is no champion) and the
    `expert`'s (None: not available; a failure when `policy.beat_expert`).

    A metric missing from the candidate fails its check; one missing from the champion skips its regression
    check with a note. `champion_version` only labels the reasons ("champion v3").
    """
    reasons: list[str] = []
    checks: dict[str, bool] = {}
    notes: list[str] = []
    label = f"champion v{champion_version}" if champion_version is not None else "champion"

    for name, minimum in policy.thresholds.items():
        value = _value(candidate, name)
        ok = value is not None and value >= minimum
        checks[f"threshold:{name}"] = ok
        if value is None:
            reasons.append(f"{name} missing from the candidate's metrics (threshold {_num(minimum)})")
        elif not ok:
            reasons.append(f"{name} {_num(value)} < threshold {_num(minimum)}")

    if champion is None:
        if policy.no_regression:
            notes.append("no champion yet: regression checks skipped")
    else:
        for name in policy.no_regression:
            reference = _value(champion, name)
            if reference is None:
                notes.append(f"{label} has no {name}: its regression check skipped")
                continue
            value = _value(candidate, name)
            ok = value is not None and reference - value <= policy.tolerance + _EPSILON
            checks[f"no_regression:{name}"] = ok
            if value is None:
                reasons.append(f"{name} missing from the candidate's metrics ({label} has {_num(reference)})")
            elif not ok:
                reasons.append(
                    f"{name} {_num(value)} fell {_num(reference - value)} below {label} ({_num(reference)}), "
                    f"tolerance {_num(policy.tolerance)}"
                )

    if policy.beat_expert:
        name = policy.metric
        value = _value(candidate, name)
        reference = _value(expert, name) if expert is not None else None
        ok = value is not None and reference is not None and value >= reference
        checks[f"beat_expert:{name}"] = ok
        if value is None:
            reasons.append(f"{name} missing from the candidate's metrics (needed to compare with the expert)")
        elif reference is None:
            reasons.append(f"beat_expert is set but the expert's metrics have no {name}")
        elif not ok:
            reasons.append(f"{name} {_num(value)} < expert ({_num(reference)})")

    return Decision(passed=not reasons, reasons=reasons, checks=checks, notes=notes)


def _value(metrics: Mapping[str, float], name: str) -> float | None:
    """The metric as a float; None when absent or NaN (a NaN compares false with everything)."""
    if name not in metrics:
        return None
    value = float(metrics[name])
    return None if math.isnan(value) else value


def _num(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3g}"
