"""Evaluate LAM1-LAM4 and the expert on the frozen test split: planning, offline (teacher-forced) and online.

Data in: each phase's model (`plan_pretrain`, `imitate`, `self_boost`, `offline_rl` out_dirs), the test split
of `datasets` (`plan_sft/test.jsonl`: task -> reference plan; `sft/test.jsonl`: the reference steps of the
expert's successful test trajectories, each with the history before it; `tasks/test.jsonl`: every test task)
and the expert's judged trajectories. Per phase: offline decision metrics on the reference histories (the
paper's Table 3), online episodes of every test task on Ray actors judged by the verifier (Table 4) and, for
LAM1, its plans scored by the step matcher or an LLM judge (Table 2).

Data out: `<metrics_dir>/<phase>.json` and `expert.json` (DVC metrics: `dvc metrics show` / `diff`),
`<out_dir>` (per-step, per-plan and per-episode records, `phase_table.md`, figures, DVC plot data), an MLflow
run `evaluate` with the table and figures, and under it one run per phase (and the expert) named after it with
the same metrics, so the MLflow UI compares the phases side by side.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from lamops.config import Config
from lamops.phases import BY_REGISTERED
from lamops.stages.base import StageResult

log = logging.getLogger(__name__)

TABLE_FILE = "phase_table.md"
EXPERT = "expert"


def model_dir(cfg: Config, phase: str) -> Path:
    """The folder a phase's stage publishes its model to."""
    return cfg.path(getattr(cfg, BY_REGISTERED[phase].stage).out_dir)


def metrics_file(cfg: Config, name: str) -> Path:
    """`<metrics_dir>/<name>.json` (name: a phase or `expert`)."""
    return cfg.path(cfg.evaluate.metrics_dir) / f"{name}.json"


def run(cfg: Config) -> StageResult:
    from lamops.agents.lam import AgentConfig
    from lamops.agents.user_doc import agent_max_len
    from lamops.data.execute import TIMINGS_FILE
    from lamops.data.judge import JUDGED_FILE
    from lamops.io import read_jsonl
    from lamops.records import PlanSFTRow, StepSFTRow, Trajectory
    from lamops.stages.training import read_rows, read_tasks
    from lamops.tracking import stage_run

    started = time.perf_counter()
    c = cfg.evaluate
    datasets = cfg.path(cfg.datasets.out_dir)
    missing = [
        f"{p} ({model_dir(cfg, p)})" for p in c.phases if not (model_dir(cfg, p) / "config.json").is_file()
    ]
    if missing:  # fail before minutes of evaluation, naming every model that is not there
        raise FileNotFoundError(
            f"evaluate: no model for {', '.join(missing)}; run the training stages first (`dvc repro`)"
        )
    from lamops.evaluation.offline import whole_tasks

    step_rows = whole_tasks(read_rows(datasets / "sft" / "test.jsonl", StepSFTRow), c.offline_max_rows)
    plan_rows = read_rows(datasets / "plan_sft" / "test.jsonl", PlanSFTRow)
    plan_rows = plan_rows[: c.planning_max_tasks] if c.planning_max_tasks else plan_rows
    tasks = read_tasks(datasets / "tasks" / "test.jsonl", c.online_max_tasks)
    judged, bad = read_jsonl(cfg.path(cfg.judge.out_dir) / JUDGED_FILE, Trajectory, "evaluate")
    if bad:
        raise ValueError(f"{bad[0].origin}: {bad[0].detail}; re-run `lamops judge`")
    agent = AgentConfig(
        max_len=agent_max_len(cfg),
        **cfg.env.view().model_dump(),
        batch_size=c.batch_size,
        max_steps=min(c.max_steps, cfg.env.max_steps),
    )
    results: dict[str, dict[str, Any]] = {}
    records: dict[str, list[dict[str, Any]]] = {"steps": [], "plans": [], "episodes": []}
    latencies: dict[str, list[float]] = {}
    run_ids: list[str] = []  # the phases' runs, then the expert's
    with stage_run(cfg, "evaluate") as tracked:
        tracked.log_params(
            {"test_steps": len(step_rows), "test_plans": len(plan_rows), "test_tasks": len(tasks)}
        )
        for phase in c.phases:
            results[phase] = _phase(cfg, phase, agent, step_rows, plan_rows, tasks, records, latencies)
            run_ids.append(_log_run(cfg, phase, results[phase]))
        timings = _read_timings(cfg.path(cfg.execute.out_dir) / TIMINGS_FILE)
        results[EXPERT] = _expert(judged, tasks, timings, records, latencies)
        run_ids.append(_log_run(cfg, EXPERT, results[EXPERT]))
        _publish(cfg, results, records, latencies, tracked, run_ids)
    summary = {
        f"{name}.{kind}_tsr": m[kind]["tsr"]
        for name, m in results.items()
        for kind in ("offline", "online")
        if kind in m
    }
    online = ", ".join(f"{n} {m['online']['tsr']:.1f}" for n, m in results.items())
    return StageResult(
        stage="evaluate",
        outputs=[str(metrics_file(cfg, n)) for n in results] + [str(cfg.path(c.out_dir))],
        metrics=summary,
        seconds=time.perf_counter() - started,
        message=f"{len(tasks)} test tasks, {len(step_rows)} test steps; online TSR: {online}; "
        f"phase table: {cfg.path(c.out_dir) / TABLE_FILE}",
    )


def _phase(cfg, phase, agent_config, step_rows, plan_rows, tasks, records, latencies) -> dict[str, Any]:
    from lamops.agents.lam import LAMAgent
    from lamops.agents.plans import PlanLibrary
    from lamops.evaluation.metrics import by_family, offline_metrics, online_by_family, online_metrics
    from lamops.evaluation.offline import decide, load
    from lamops.evaluation.online import run_phase
    from lamops.progress import progress

    c = cfg.evaluate
    folder = model_dir(cfg, phase)
    started = time.perf_counter()
    model, tokenizer = load(folder)
    out: dict[str, Any] = {"phase": phase, "model_dir": str(getattr(cfg, BY_REGISTERED[phase].stage).out_dir)}
    if phase == "lam1" and plan_rows:
        out["planning"] = _planning(cfg, model, tokenizer, plan_rows, records)
    with progress(None, f"evaluate {phase} offline", total=len(step_rows)) as bar:
        agent = LAMAgent(model, tokenizer, agent_config, PlanLibrary.load(folder))
        scores = decide(agent, step_rows, bar)
    del model
    out["offline"] = offline_metrics(scores)
    out["offline_by_family"] = by_family(scores)
    records["steps"] += [{"phase": phase, **_asdict(s), "success": s.success} for s in scores]
    offline_s = time.perf_counter() - started
    trajectories, episodes = run_phase(
        folder,
        tasks,
        templates_dir=cfg.path(cfg.templates.out_dir),
        agent_config=agent_config,
        workers=c.workers,
        seed=c.seed,
        phase=phase,
    )
    out["online"] = online_metrics(episodes)
    out["online_by_family"] = online_by_family(episodes)
    latencies[phase] = [x for e in episodes for x in e.step_latencies]
    records["episodes"] += [_episode_record(phase, t, e) for t, e in zip(trajectories, episodes, strict=True)]
    out["seconds"] = {
        "offline": round(offline_s, 1),
        "online": round(time.perf_counter() - started - offline_s, 1),
    }
    log.info(
        "evaluate %s: offline TSR %.1f, online TSR %.1f", phase, out["offline"]["tsr"], out["online"]["tsr"]
    )
    return out


def _planning(cfg: Config, model, tokenizer, plan_rows, records) -> dict[str, Any]:
    from lamops.evaluation.metrics import parse_plan, planning_metrics, score_plan
    from lamops.evaluation.offline import generate_plans
    from lamops.progress import progress

    c = cfg.evaluate
    with progress(None, "evaluate lam1 plans", total=len(plan_rows)) as bar:
        texts = generate_plans(
            model,
            tokenizer,
            [r.prompt for r in plan_rows],
            max_len=cfg.plan_pretrain.sft.max_len,
            max_new_tokens=c.planning_max_new_tokens,
            batch_size=c.batch_size,
            progress=bar,
        )
    judge = _plan_judge(cfg) if c.planning_judge == "llm" else None
    scores = []
    for row, text in zip(plan_rows, texts, strict=True):
        predicted, reference = parse_plan(text), parse_plan(row.completion)
        judged = judge(row.prompt, predicted) if judge is not None else None
        score = score_plan(row.task_id, predicted, reference, c.match_threshold, judged_success=judged)
        scores.append(score)
        records["plans"].append({"task": row.prompt, "plan": predicted, **_asdict(score)})
    return planning_metrics(scores)


def _plan_judge(cfg: Config):
    """The LLM judge of plans (the `llm` section's endpoint); the builtin provider has none."""
    if cfg.llm.provider != "openai":
        raise ValueError(
            "evaluate.planning_judge: llm needs llm.provider: openai (an OpenAI-compatible endpoint); "
            "the builtin provider has no plan judge: use planning_judge: matcher"
        )
    from lamops.evaluation.metrics import llm_plan_judge
    from lamops.roles.openai_compat import LLMSettings, OpenAIClient

    client = OpenAIClient(
        LLMSettings(
            base_url=cfg.llm.base_url,
            model=cfg.llm.model,
            api_key_env=cfg.llm.api_key_env,
            timeout_s=cfg.llm.timeout_s,
            max_retries=cfg.llm.max_retries,
            temperature=cfg.llm.temperature,
        )
    )
    return lambda task, plan: llm_plan_judge(client, task, plan)


def _read_timings(path: Path) -> dict[str, dict]:
    """The execute stage's measured seconds per task id; {} when the file is missing (an older run)."""
    import json

    if not path.is_file():
        log.warning("%s: missing; the expert's completion time and step latency count as 0", path)
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {row["task_id"]: row for row in rows}


def _expert(judged, tasks, timings, records, latencies) -> dict[str, Any]:
    from lamops.evaluation.metrics import online_by_family, online_metrics
    from lamops.evaluation.online import expert_scores

    by_id = {t.task.task_id: t for t in judged}
    episodes = expert_scores(judged, tasks, timings)
    latencies[EXPERT] = [x for e in episodes for x in e.step_latencies]
    for task, e in zip(tasks, episodes, strict=True):
        trajectory = by_id.get(task.task_id)
        records["episodes"].append(_episode_record(EXPERT, trajectory, e))
    return {
        "phase": EXPERT,
        "online": online_metrics(episodes),
        "online_by_family": online_by_family(episodes),
    }


def _episode_record(phase: str, trajectory, score) -> dict[str, Any]:
    verdict = trajectory.verdict if trajectory is not None else None
    return {
        "phase": phase,
        "task_id": score.task_id,
        "family": score.family,
        "success": score.success,
        "steps": score.steps,
        "seconds": round(score.seconds, 4),
        "verdict": verdict.complete if verdict else None,
        "reason": verdict.reason if verdict else (trajectory.error if trajectory is not None else None),
        "actions": [f"{s.function} {s.control_name or ''}".strip() for s in trajectory.steps]
        if trajectory is not None
        else [],
    }


def _asdict(record) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    return asdict(record) if is_dataclass(record) else record.model_dump(mode="json")


def _log_run(cfg: Config, name: str, metrics: dict[str, Any]) -> str:
    """A run per phase, nested under the stage's run and named after the phase, with the same metric keys
    as metrics/<phase>.json: the MLflow UI lines the phases up side by side. Returns the run's id."""
    import mlflow
    from lamops.evaluation.metrics import flatten_metrics

    # No `lamops.stage` tag: that names the stage's own run; filter these by `tags.lamops.phase`.
    tags = {"lamops.phase": name, "lamops.evaluated_by": "evaluate", "lamops.profile": cfg.profile}
    if name != EXPERT:
        tags["lamops.model_version"] = _registered(name, model_dir(cfg, name))
    # The parent's experiment, given explicitly: MLflow would otherwise put a nested run in the active
    # experiment, which stage_run never sets (it passes its experiment id).
    experiment_id = mlflow.active_run().info.experiment_id
    with mlflow.start_run(run_name=name, nested=True, tags=tags, experiment_id=experiment_id) as run:
        flat = {k: v for k, v in flatten_metrics(metrics).items() if "_by_family." not in k}
        mlflow.log_metrics({k: float(v) for k, v in flat.items()})
        mlflow.log_dict(metrics, f"{name}.json")
    return run.info.run_id


def compare_url(experiment_id: str, run_ids: list[str]) -> str:
    """The MLflow UI's page comparing `run_ids` (metrics side by side, charts), as a link in the UI."""
    from urllib.parse import quote

    runs = quote(json.dumps(run_ids, separators=(",", ":")))
    return f"#/compare-runs?runs={runs}&experiments={quote(json.dumps([experiment_id]))}"


def description(
    table: str,
    names: list[str],
    experiment_id: str,
    run_id: str,
    figures: list[str],
    compare: list[str] | None = None,
) -> str:
    """The evaluate run's description (Markdown on its MLflow page): where the phase table is, a link to the
    page comparing the phases' runs (`compare`: their ids) and how to get there by hand, then the table
    itself when it fits in the description."""
    artifacts = f"#/experiments/{experiment_id}/runs/{run_id}/artifacts"
    link = ""
    if compare:
        url = compare_url(experiment_id, compare)
        link = f"**[Compare {', '.join(names)}]({url})**: their metrics side by side. "
    head = "\n".join(
        [
            "**The phases side by side.** The phase table below is the artifact "
            f"[`{TABLE_FILE}`]({artifacts}/{TABLE_FILE}) (paper Tables 2-4: our numbers beside the paper's); "
            "the figures: " + ", ".join(f"[`{f}`]({artifacts}/{f})" for f in figures) + ".",
            "",
            f"{link}Each of {', '.join(names)} has a run nested under this one, named after it and tagged "
            "`lamops.phase`, with the same metric keys (`offline.ssr`, `offline.tsr`, `online.tsr`, ...; "
            "`planning.*` for LAM1 only; the expert, replayed from its logs, has the `online.*` ones): "
            "in the experiment's runs, search `tags.lamops.phase != ''`, select them and **Compare**, "
            "or chart `online.tsr` across them. "
            "This run also holds every phase's figures as `<phase>.<metric>`.",
            "",
            "",
        ]
    )
    if len(head) + len(table) > 8000:  # what a tag holds
        return head + f"(The table is too long for a description: open `{TABLE_FILE}`.)\n"
    return head + table


def _registered(phase: str, folder: Path) -> str:
    """`lam4/3`: the registered version of the evaluated folder, or `lam4/unregistered`."""
    from lamops.registry.models import MODEL_SHA_TAG, find_version, model_sha

    version = find_version(phase, MODEL_SHA_TAG, model_sha(folder))
    return f"{phase}/{version if version is not None else 'unregistered'}"


def _publish(cfg: Config, results, records, latencies, tracked, run_ids: list[str]) -> None:
    """Metrics files, the report folder (records, table, figures, plot data) and the stage run's artifacts."""
    import matplotlib.pyplot as plt

    import mlflow
    from lamops.evaluation.report import family_figure, latency_figure, phase_table, plot_rows, tsr_figure
    from lamops.io import replace_dir, write_atomic, write_json, write_jsonl

    c = cfg.evaluate
    phases = list(c.phases)
    table = phase_table(results, phases)
    figures = {
        "tsr_by_phase.png": tsr_figure(results, phases),
        "family_success.png": family_figure(results, phases),
        "step_latency.png": latency_figure(latencies),
    }
    out = cfg.path(c.out_dir)
    with replace_dir(out) as staging:
        for name, rows in records.items():
            write_jsonl(staging / f"{name}.jsonl", rows)
        for name, rows in plot_rows(results, phases).items():
            write_json(staging / "plots" / f"{name}.json", rows)
        write_json(
            staging / "plots" / "step_latency.json",
            [{"phase": n, "step_latency_s": round(x, 5)} for n, xs in latencies.items() for x in xs],
        )
        write_atomic(staging / TABLE_FILE, table.encode())
        for name, figure in figures.items():
            figure.savefig(staging / name, dpi=110)
    for name, metrics in results.items():
        write_json(metrics_file(cfg, name), metrics)
    tracked.log_text(table, TABLE_FILE)
    run = mlflow.active_run().info
    names = [*phases, EXPERT]
    tracked.describe(description(table, names, run.experiment_id, run.run_id, list(figures), run_ids))
    for name, figure in figures.items():
        tracked.log_figure(figure, name)
    plt.close("all")
    # The stage run holds every phase's headline figures too (`lam4.online.tsr`), for one-run overviews.
    tracked.log_metrics(
        {
            name: {kind: m[kind] for kind in ("planning", "offline", "online") if kind in m}
            for name, m in results.items()
        }
    )
