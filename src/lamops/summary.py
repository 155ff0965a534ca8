"""What `lamops pipeline` prints when it ends: the stages, the phase table, the MLflow UI and the champion.

The text is built from what the run left behind (its StageResults, `reports/evaluate/phase_table.md` and the
MLflow registry), so it tells the truth about a partial run too: a stage subset without `evaluate` prints
no table, a registry without a champion says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamops.config import Config

UI_HOST = "127.0.0.1"
UI_PORT = 5000


@dataclass(frozen=True)
class Champion:
    """The version of the deployable model that holds the alias `champion`."""

    model: str
    version: str
    phase: str | None
    source: str | None


def stage_lines(results: list[dict[str, Any]]) -> list[str]:
    """One aligned line per stage: name, seconds, its message."""
    if not results:
        return ["no stage ran"]
    width = max(len(r["stage"]) for r in results)
    return [f"  {r['stage']:<{width}}  {r['seconds']:7.1f} s  {r['message']}" for r in results]


def ui_location(cfg: Config) -> str:
    """Where to look at the runs: the tracking server's own URL, or `lamops ui` over the local store."""
    from lamops.tracking import tracking_uri

    uri = tracking_uri(cfg)
    if uri.startswith(("http://", "https://")):
        return f"MLflow UI: {uri} (experiment `{cfg.tracking.experiment}`)"
    return (
        f"MLflow UI: `lamops ui` serves the store {uri} at http://{UI_HOST}:{UI_PORT} "
        f"(experiment `{cfg.tracking.experiment}`)"
    )


def find_champion(cfg: Config) -> Champion | None:
    """The champion of `promote.registered_model`, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from lamops.tracking import setup, tracking_uri

    setup(cfg)
    client = MlflowClient(tracking_uri(cfg))
    name = cfg.promote.registered_model
    try:
        version = client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None
    return Champion(
        model=name,
        version=str(version.version),
        phase=version.tags.get("lamops.phase"),
        source=version.tags.get("lamops.source"),
    )


def champion_line(champion: Champion | None, registered_model: str) -> str:
    if champion is None:
        return f"Champion: none yet (`{registered_model}` has no version with the alias `champion`)"
    details = [f"phase {champion.phase}"] if champion.phase else []
    details += [f"from {champion.source}"] if champion.source else []
    suffix = f" ({', '.join(details)})" if details else ""
    return f"Champion: models:/{champion.model}@champion = version {champion.version}{suffix}"


def render(cfg: Config, results: list[dict[str, Any]]) -> str:
    """The end-of-run text of `lamops pipeline`."""
    from lamops.stages.evaluate import TABLE_FILE

    lines = [f"lamops pipeline: {len(results)} stage(s), profile {cfg.profile}", *stage_lines(results), ""]
    table = cfg.path(cfg.evaluate.out_dir) / TABLE_FILE
    if any(r["stage"] == "evaluate" for r in results) and table.is_file():
        shown = table.relative_to(cfg.root) if table.is_relative_to(cfg.root) else table
        lines += [f"Phase table ({shown}):", "", table.read_text().rstrip(), ""]
    lines.append(ui_location(cfg))
    lines.append(champion_line(find_champion(cfg), cfg.promote.registered_model))
    return "\n".join(lines)
