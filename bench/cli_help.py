"""How long `lamops --help` takes, start to exit: the start-up cost of every lamops command.

Run: .venv/bin/python bench/cli_help.py   Prints the median and minimum of several runs.
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 7


def main() -> None:
    lamops = Path(sys.executable).with_name("lamops")
    walls = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([str(lamops), "--help"], check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
    median_ms, min_ms = statistics.median(walls) * 1000, min(walls) * 1000
    print(f"cli_help_wall_median: {median_ms:.0f} ms")
    print(f"cli_help_wall_min: {min_ms:.0f} ms")


if __name__ == "__main__":
    main()
