"""Benchmark the execute and judge stages: serially against Ray with 2 workers, on the same tasks.

Builds N tasks (every family x applicable template, seed 0, then seed 1, ... until N; the default, 527, is
what the default profile's instantiate passes to execute, metrics/data.json), writes the template library to
a temp folder, then runs execute + judge serially (--serial-workers: 1 Ray worker by default, 0 in-process)
and on Ray with --workers workers (each stage into its own temp folder) and checks that both give
byte-identical outputs. Ray start-up (ray.init and the client's first serialisation, once per process) is
timed apart and left out of the rates; worker start-up is in them (each pool builds its worker in every
process it uses; the serial run goes first, so its first pool also pays for the first use of Ray's
prestarted processes: imports, ~0.6 s of CPU each).

Target: speedup >= 1.8 x on 2 cores. A shared machine bounds it by its free cores, so the load is printed
with the figures: the 1-minute load average (os.getloadavg) before and after each run, and the cores other
programs kept busy during each run (CPU time of the machine less this process and its Ray processes).

Output: one figure per line, `name: value unit`: tasks, serial_workers, serial_s, parallel_s, speedup (the
headline: execute + judge wall time, serial / parallel), serial_execute_seconds, serial_judge_seconds,
serial_trajectories_per_s, ray_init_seconds, execute_seconds, judge_seconds (parallel),
ray_trajectories_per_s, ray_speedup (= speedup), execute_speedup, judge_speedup, paper_scale_seconds
(extrapolated: 4,500 trajectories at the parallel rate, execute + judge); serial_cpu_seconds and
ray_cpu_seconds (CPU time of this process and its Ray processes), other_load_serial_cores and
other_load_ray_cores, load1_before_serial, load1_after_serial, load1_after_parallel.

With --ray-data, also the cluster path (Ray Data reads tasks.jsonl and the trajectory files in the
workers; execute_task_file, judge_trajectories(read_in_workers=True)) on --workers workers, checked
byte-identical too: ray_data_execute_seconds, ray_data_judge_seconds, ray_data_speedup (serial / it).

Usage: python bench/data_build.py [--tasks N] [--batch-size B] [--workers W] [--serial-workers 0|1]
       [--ray-data]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
PAPER_SCALE = 4500  # trajectories: the paper's 2,192 successes + 2,284 retried failures, rounded


class CpuMeter:
    """CPU used during a phase: by the whole machine (/proc/stat) and by this process and its descendants
    (Ray's raylet, GCS and workers; sampled every 0.2 s, so a process's last 0.2 s before it exits is lost).
    The difference is what other programs took from the cores meanwhile."""

    def __init__(self):
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.hz = os.sysconf("SC_CLK_TCK")

    def _machine(self) -> float:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / self.hz  # all but idle and iowait

    def _ours(self) -> dict[int, float]:
        out = {}
        for p in [self.me, *self.me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
            except self.psutil.Error:
                continue
        return out

    def __enter__(self) -> CpuMeter:
        self.wall0, self.machine0 = time.perf_counter(), self._machine()
        self.first = self._ours()
        self.last = dict(self.first)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.last.update(self._ours())

    def __exit__(self, *exc) -> None:
        self.last.update(self._ours())
        self._stop.set()
        self._thread.join()
        self.wall = time.perf_counter() - self.wall0
        machine = self._machine() - self.machine0
        self.ours = sum(t - self.first.get(pid, 0.0) for pid, t in self.last.items())
        self.others_cores = max(0.0, machine - self.ours) / self.wall


def build_tasks(n: int) -> list:
    from lamops.env.families import FAMILIES, applicable_templates, sample_task

    pairs = [(f, t) for f in sorted(FAMILIES) for t in applicable_templates(f)]
    tasks = []
    seed = 0
    while len(tasks) < n:
        for family, template in pairs:
            task = sample_task(family, template, seed)
            if task is not None and len(tasks) < n:
                tasks.append(task)
        seed += 1
    return tasks


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "timings.jsonl"
    }


def run_both(
    tasks, root: Path, library: Path, workers: int, batch_size: int, ray_data: bool = False
) -> tuple[float, float]:
    """(execute seconds, judge seconds) of one execute + judge run into root/execute and root/judge;
    `ray_data`: the cluster path, Ray Data reading the inputs in the workers."""
    from lamops.data.execute import execute_task_file, execute_tasks
    from lamops.data.judge import judge_trajectories
    from lamops.env.observation import PromptView
    from lamops.roles.builtin import BuiltinJudge

    settings = {"max_steps": 30, "view": PromptView(), "min_score": 80, "progress": False}
    if ray_data:
        source = root / "tasks.jsonl"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("".join(t.model_dump_json() + "\n" for t in tasks), encoding="utf-8")
    t0 = time.perf_counter()
    if ray_data:
        summary, _ = execute_task_file(
            source,
            root / "execute",
            templates_dir=library,
            workers=workers,
            batch_size=batch_size,
            **settings,
        )
    else:
        summary = execute_tasks(
            tasks, root / "execute", templates_dir=library, workers=workers, batch_size=batch_size, **settings
        )
    t1 = time.perf_counter()
    judged = judge_trajectories(
        root / "execute",
        root / "judge",
        templates_dir=library,
        judge=BuiltinJudge(),
        workers=workers,
        batch_size=batch_size,
        progress=False,
        read_in_workers=ray_data,
    )
    t2 = time.perf_counter()
    assert summary.run == len(tasks) and judged.judged == len(tasks), (summary, judged)
    print(
        f"# workers {workers}: {summary.failed_to_run} failed to run; verdicts pass {judged.pass_}, "
        f"fail {judged.fail}, unsure {judged.unsure}",
        file=sys.stderr,
    )
    return t1 - t0, t2 - t1


def load1() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time execute + judge serially and on Ray (2 workers).")
    parser.add_argument("--tasks", type=int, default=527, help="tasks to build and run (default: 527)")
    parser.add_argument("--batch-size", type=int, default=16, help="tasks per Ray call (default: 16)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers of the parallel run (default: 2)")
    parser.add_argument(
        "--serial-workers",
        type=int,
        choices=(0, 1),
        default=1,
        help="the serial run: 1 Ray worker (default) or 0, in-process",
    )
    parser.add_argument(
        "--ray-data",
        action="store_true",
        help="also time the cluster path (Ray Data reads the inputs in the workers) on --workers workers",
    )
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.workers < 1:
        parser.error("--tasks and --workers must be >= 1")

    import ray

    from lamops.env.templates import build_library

    tasks = build_tasks(args.tasks)
    load = {}
    with tempfile.TemporaryDirectory(prefix="lamops-bench-") as tmp:
        root = Path(tmp)
        library = root / "templates"
        build_library(library)

        t0 = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        ray.put(None)  # the client's first serialisation imports pyarrow and numpy: once per process
        ray_init = time.perf_counter() - t0
        try:
            load["before_serial"] = load1()
            with CpuMeter() as serial_cpu:
                serial = run_both(tasks, root / "serial", library, args.serial_workers, args.batch_size)
            load["after_serial"] = load1()
            with CpuMeter() as ray_cpu:
                parallel = run_both(tasks, root / "ray", library, args.workers, args.batch_size)
            load["after_parallel"] = load1()
            if args.ray_data:
                ray_data = run_both(tasks, root / "ray_data", library, args.workers, args.batch_size, True)
        finally:
            ray.shutdown()
        runs = ("ray", "ray_data") if args.ray_data else ("ray",)
        same = all(
            digests(root / "serial" / d) == digests(root / run / d)
            for run in runs
            for d in ("execute", "judge")
        )
        print(f"# serial and Ray outputs byte-identical: {'yes' if same else 'NO'}", file=sys.stderr)

    n = len(tasks)
    (serial_exec, serial_judge), (ray_exec, ray_judge) = serial, parallel
    serial_s, parallel_s = serial_exec + serial_judge, ray_exec + ray_judge
    print(f"tasks: {n} tasks")
    print(f"serial_workers: {args.serial_workers} workers")
    print(f"serial_s: {serial_s:.2f} s")
    print(f"parallel_s: {parallel_s:.2f} s")
    print(f"speedup: {serial_s / parallel_s:.2f} x")
    print(f"serial_execute_seconds: {serial_exec:.2f} s")
    print(f"serial_judge_seconds: {serial_judge:.2f} s")
    print(f"serial_trajectories_per_s: {n / serial_s:.1f} traj/s")
    print(f"ray_init_seconds: {ray_init:.2f} s")
    print(f"execute_seconds: {ray_exec:.2f} s")
    print(f"judge_seconds: {ray_judge:.2f} s")
    print(f"ray_trajectories_per_s: {n / parallel_s:.1f} traj/s")
    print(f"ray_speedup: {serial_s / parallel_s:.2f} x")
    print(f"execute_speedup: {serial_exec / ray_exec:.2f} x")
    print(f"judge_speedup: {serial_judge / ray_judge:.2f} x")
    # Other programs on the machine take cores from the runs; these say how much (approximate).
    print(f"serial_cpu_seconds: {serial_cpu.ours:.2f} s")
    print(f"ray_cpu_seconds: {ray_cpu.ours:.2f} s")
    print(f"other_load_serial_cores: {serial_cpu.others_cores:.2f} cores")
    print(f"other_load_ray_cores: {ray_cpu.others_cores:.2f} cores")
    for when, value in load.items():
        print(f"load1_{when}: {value:.2f} load")
    if args.ray_data:
        print(f"ray_data_execute_seconds: {ray_data[0]:.2f} s")
        print(f"ray_data_judge_seconds: {ray_data[1]:.2f} s")
        print(f"ray_data_speedup: {serial_s / sum(ray_data):.2f} x")
    print(f"# paper_scale_seconds is extrapolated: {PAPER_SCALE} trajectories at ray_trajectories_per_s")
    print(f"paper_scale_seconds: {PAPER_SCALE * parallel_s / n:.0f} s")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
