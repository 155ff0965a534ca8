"""The promotion policy on hand-made metrics: candidate choice, thresholds, regression, the expert."""

import math

import pytest

from lamops.config import PromoteConfig
from lamops.registry.gating import Decision, Policy, choose_candidate, decide

POLICY = Policy(
    metric="online.tsr",
    thresholds={"online.tsr": 20.0, "offline.operation_acc": 50.0},
    no_regression=("offline.tsr", "online.tsr"),
    tolerance=2.0,
)
GOOD = {"online.tsr": 30.0, "offline.operation_acc": 95.0, "offline.tsr": 40.1}


def test_thresholds_met_without_champion_passes():
    decision = decide(GOOD, None, None, POLICY)

    assert decision == Decision(
        passed=True,
        reasons=[],
        checks={"threshold:online.tsr": True, "threshold:offline.operation_acc": True},
        notes=["no champion yet: regression checks skipped"],
    )


def test_threshold_unmet_fails_with_a_sentence():
    decision = decide({**GOOD, "online.tsr": 12.0}, None, None, POLICY)

    assert not decision.passed
    assert decision.reasons == ["online.tsr 12.0 < threshold 20.0"]
    assert decision.checks["threshold:online.tsr"] is False
    assert decision.checks["threshold:offline.operation_acc"] is True


def test_threshold_met_exactly_passes():
    assert decide({**GOOD, "online.tsr": 20.0}, None, None, POLICY).passed


def test_missing_metric_fails_naming_it():
    candidate = {k: v for k, v in GOOD.items() if k != "offline.operation_acc"}

    decision = decide(candidate, None, None, POLICY)

    assert not decision.passed
    assert decision.reasons == ["offline.operation_acc missing from the candidate's metrics (threshold 50.0)"]


def test_nan_metric_counts_as_missing():
    assert not decide({**GOOD, "online.tsr": math.nan}, None, None, POLICY).passed


def test_regression_within_tolerance_passes():
    champion = {"offline.tsr": 42.1, "online.tsr": 31.0}

    decision = decide(GOOD, champion, None, POLICY, champion_version=3)

    assert decision.passed, decision.reasons
    assert decision.checks["no_regression:offline.tsr"] is True
    assert decision.checks["no_regression:online.tsr"] is True


def test_regression_over_tolerance_fails_naming_the_champion():
    champion = {"offline.tsr": 45.3, "online.tsr": 29.0}

    decision = decide(GOOD, champion, None, POLICY, champion_version=3)

    assert not decision.passed
    assert decision.reasons == ["offline.tsr 40.1 fell 5.2 below champion v3 (45.3), tolerance 2.0"]
    assert decision.checks["no_regression:offline.tsr"] is False
    assert decision.checks["no_regression:online.tsr"] is True


def test_metric_the_champion_lacks_is_skipped_with_a_note():
    decision = decide(GOOD, {"online.tsr": 25.0}, None, POLICY, champion_version=2)

    assert decision.passed
    assert "no_regression:offline.tsr" not in decision.checks
    assert decision.notes == ["champion v2 has no offline.tsr: its regression check skipped"]


def test_metric_the_candidate_lacks_fails_the_regression_check():
    policy = Policy(metric="online.tsr", no_regression=("offline.ssr",), tolerance=2.0)

    decision = decide({"online.tsr": 30.0}, {"offline.ssr": 50.0}, None, policy)

    assert not decision.passed
    assert decision.reasons == ["offline.ssr missing from the candidate's metrics (champion has 50.0)"]


def test_beat_expert():
    policy = Policy(metric="online.tsr", beat_expert=True)

    assert decide({"online.tsr": 30.0}, None, {"online.tsr": 30.0}, policy).passed
    below = decide({"online.tsr": 29.0}, None, {"online.tsr": 30.0}, policy)
    assert below.reasons == ["online.tsr 29.0 < expert (30.0)"]
    assert below.checks == {"beat_expert:online.tsr": False}
    no_expert = decide({"online.tsr": 99.0}, None, None, policy)
    assert no_expert.reasons == ["beat_expert is set but the expert's metrics have no online.tsr"]
    # Without beat_expert, the expert does not matter.
    assert decide({"online.tsr": 1.0}, None, {"online.tsr": 30.0}, Policy(metric="online.tsr")).passed


def test_every_failure_is_reported():
    policy = Policy(**{**POLICY.__dict__, "beat_expert": True})
    candidate = {"online.tsr": 10.0, "offline.operation_acc": 40.0, "offline.tsr": 30.0}

    decision = decide(candidate, {"offline.tsr": 45.0, "online.tsr": 15.0}, {"online.tsr": 12.0}, policy)

    assert len(decision.reasons) == 5
    assert not any(decision.checks.values())


def test_choose_candidate_takes_the_best():
    metrics = {"lam1": {"online.tsr": 0.0}, "lam2": {"online.tsr": 31.0}, "lam3": {"online.tsr": 30.0}}

    assert choose_candidate(metrics, "online.tsr") == "lam2"


def test_choose_candidate_tie_goes_to_the_later_phase():
    metrics = {f"lam{i}": {"online.tsr": 30.0} for i in range(1, 5)}

    assert choose_candidate(metrics, "online.tsr") == "lam4"
    assert choose_candidate({**metrics, "lam4": {"online.tsr": 29.9}}, "online.tsr") == "lam3"


def test_choose_candidate_names_the_phase_lacking_the_metric():
    metrics = {"lam1": {"online.tsr": 1.0}, "lam2": {"offline.tsr": 50.0}}

    with pytest.raises(
        ValueError, match=r"phase lam2 has no metric 'online.tsr' \(its metrics: offline.tsr\)"
    ):
        choose_candidate(metrics, "online.tsr")
    with pytest.raises(ValueError, match="lam1.*NaN"):
        choose_candidate({"lam1": {"online.tsr": math.nan}}, "online.tsr")
    with pytest.raises(ValueError, match="lamops evaluate"):
        choose_candidate({}, "online.tsr")


def test_policy_from_config():
    promote = PromoteConfig(
        registered_model="lam",
        metric="online.tsr",
        thresholds={"offline.operation_acc": 50.0},
        no_regression=["offline.ssr", "online.tsr"],
        tolerance=2.0,
        beat_expert=True,
    )

    assert Policy.from_config(promote) == Policy(
        metric="online.tsr",
        thresholds={"offline.operation_acc": 50.0},
        no_regression=("offline.ssr", "online.tsr"),
        tolerance=2.0,
        beat_expert=True,
    )
