"""The phase table in the layout of the paper's Tables 2-4, the figures, and the DVC plot data.

Pure formatting of the metrics the `evaluate` stage computed (`metrics/<phase>.json`); no model, no IO
besides the figure objects returned."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

OFFLINE_ROWS = (
    ("object_acc", "Object Acc"),
    ("operation_acc", "Operation Acc"),
    ("status_acc", "Status Acc"),
    ("ssr", "SSR"),
    ("tsr", "TSR"),
)
ONLINE_COLUMNS = (
    ("tsr", "TSR %"),
    ("completion_time_s", "completion time s"),
    ("steps", "steps"),
    ("step_latency_s", "step latency s"),
)
PLANNING_COLUMNS = (("tsr", "TSR"), ("step_precision", "step precision"), ("step_recall", "step recall"))
# The paper's figures (REFERENCE.md), shown beside ours: the bar is theirs.
PAPER_OFFLINE = {
    "lam1": (39.4, 59.9, 32.7, 33.0, 35.6),
    "lam2": (85.6, 97.3, 97.8, 83.6, 76.8),
    "lam3": (87.4, 97.7, 98.2, 85.9, 79.3),
    "lam4": (87.8, 97.7, 99.0, 86.2, 81.2),
}
PAPER_ONLINE_LAM = (71.0, 30.42, 5.62, 5.41)
PAPER_PLANNING_LAM1 = (82.2, 54.7, 55.7)


def _cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def phase_table(metrics: Mapping[str, Mapping[str, Any]], phases: Sequence[str]) -> str:
    """Markdown: Table 2 (LAM1 planning), Table 3 (offline, metric rows x phase columns), Table 4 (online,
    phase rows), with the paper's numbers beside ours. `metrics`: phase (and "expert") -> nested metrics."""
    lines = ["# lamops phase table", ""]
    if "lam1" in metrics and metrics["lam1"].get("planning"):
        p = metrics["lam1"]["planning"]
        lines += [
            "## Planning (LAM1; paper Table 2)",
            "",
            "| model | TSR | step precision | step recall | tasks |",
            "|---|---|---|---|---|",
            "| LAM1 (ours) | "
            + " | ".join(_cell(p.get(k)) for k, _ in PLANNING_COLUMNS)
            + f" | {p.get('tasks')} |",
            "| LAM1 (paper) | " + " | ".join(_cell(v) for v in PAPER_PLANNING_LAM1) + " | 15,334 |",
            "",
        ]
    lines += [
        "## Offline decision making (teacher-forced on the test split; paper Table 3)",
        "",
        "| metric | "
        + " | ".join(p.upper() for p in phases)
        + " | "
        + " | ".join(f"paper {p.upper()}" for p in phases if p in PAPER_OFFLINE)
        + " |",
        "|---|" + "---|" * (len(phases) + sum(p in PAPER_OFFLINE for p in phases)),
    ]
    for i, (key, label) in enumerate(OFFLINE_ROWS):
        ours = [_cell(metrics.get(p, {}).get("offline", {}).get(key)) for p in phases]
        paper = [_cell(PAPER_OFFLINE[p][i]) for p in phases if p in PAPER_OFFLINE]
        lines.append(f"| {label} | " + " | ".join(ours + paper) + " |")
    first = metrics.get(phases[0], {}).get("offline", {}) if phases else {}
    lines += ["", f"Scored steps: {first.get('steps', '—')}, tasks: {first.get('tasks', '—')}.", ""]
    lines += [
        "## Online (live in the environment, judged by the verifier; paper Table 4)",
        "",
        "| model | " + " | ".join(label for _, label in ONLINE_COLUMNS) + " | episodes |",
        "|---|" + "---|" * (len(ONLINE_COLUMNS) + 1),
    ]
    for name in [*phases, "expert"]:
        online = metrics.get(name, {}).get("online")
        if not online:
            continue
        cells = [_cell(online.get(k), 1 if k == "tsr" else 3) for k, _ in ONLINE_COLUMNS]
        lines.append(
            f"| {name.upper() if name != 'expert' else 'expert (baseline)'} | "
            + " | ".join(cells)
            + f" | {online.get('episodes')} |"
        )
    lines.append("| LAM (paper) | " + " | ".join(_cell(v, 2) for v in PAPER_ONLINE_LAM) + " | 435 |")
    lines += [
        "",
        "Rates in percent. The expert has no offline row: the test split's reference actions are its own.",
        "",
    ]
    return "\n".join(lines)


def plot_rows(metrics: Mapping[str, Mapping[str, Any]], phases: Sequence[str]) -> dict[str, list[dict]]:
    """DVC plot data: TSR by phase, per-family online success, one row per figure point."""
    tsr = []
    for name in [*phases, "expert"]:
        m = metrics.get(name, {})
        tsr.append(
            {
                "phase": name,
                "offline_tsr": m.get("offline", {}).get("tsr"),
                "offline_ssr": m.get("offline", {}).get("ssr"),
                "online_tsr": m.get("online", {}).get("tsr"),
            }
        )
    family = [
        {"phase": name, "family": fam, "tsr": row["tsr"], "episodes": row["episodes"]}
        for name in [*phases, "expert"]
        for fam, row in sorted(metrics.get(name, {}).get("online_by_family", {}).items())
    ]
    return {"tsr_by_phase": tsr, "family_success": family}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tsr_figure(metrics: Mapping[str, Mapping[str, Any]], phases: Sequence[str]):
    """Offline and online TSR by phase (the expert's online TSR as a line)."""
    plt = _plt()
    figure, axis = plt.subplots(figsize=(5.5, 3.2))
    xs = range(len(phases))
    offline = [metrics.get(p, {}).get("offline", {}).get("tsr") or 0 for p in phases]
    online = [metrics.get(p, {}).get("online", {}).get("tsr") or 0 for p in phases]
    axis.bar([x - 0.2 for x in xs], offline, width=0.4, label="offline TSR")
    axis.bar([x + 0.2 for x in xs], online, width=0.4, label="online TSR")
    expert = metrics.get("expert", {}).get("online", {}).get("tsr")
    if expert is not None:
        axis.axhline(expert, color="gray", linestyle="--", label=f"expert online ({expert:.1f})")
    axis.set_xticks(list(xs), [p.upper() for p in phases])
    axis.set_ylabel("%")
    axis.set_ylim(0, 100)
    axis.set_title("Task success rate by phase", fontsize=10)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def family_figure(metrics: Mapping[str, Mapping[str, Any]], phases: Sequence[str]):
    """Online success per task family, one bar per phase and the expert."""
    plt = _plt()
    names = [*phases, "expert"]
    families = sorted({f for n in names for f in metrics.get(n, {}).get("online_by_family", {})})
    figure, axis = plt.subplots(figsize=(max(6.0, 0.45 * len(families) * len(names) / 2), 3.8))
    width = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        rows = metrics.get(name, {}).get("online_by_family", {})
        axis.bar(
            [i + k * width for i in range(len(families))],
            [rows.get(f, {}).get("tsr", 0) for f in families],
            width=width,
            label=name.upper() if name != "expert" else "expert",
        )
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(families))], families, rotation=75, fontsize=6)
    axis.set_ylabel("online success %")
    axis.set_ylim(0, 100)
    axis.set_title("Online success per task family", fontsize=10)
    axis.legend(fontsize=7, ncol=len(names))
    figure.tight_layout()
    return figure


def latency_figure(latencies: Mapping[str, Sequence[float]]):
    """Distribution of step latency (seconds) per phase."""
    plt = _plt()
    names = [n for n, v in latencies.items() if v]
    figure, axis = plt.subplots(figsize=(5.5, 3.2))
    if names:
        axis.boxplot([list(latencies[n]) for n in names], showfliers=True)
        axis.set_xticks(range(1, len(names) + 1), [n.upper() if n != "expert" else "expert" for n in names])
        axis.set_yscale("log")
    axis.set_ylabel("step latency s (log)")
    axis.set_title("Step latency distribution", fontsize=10)
    figure.tight_layout()
    return figure
