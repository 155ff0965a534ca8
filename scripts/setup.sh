#!/usr/bin/env bash
# Install lamops and its stack into .venv. Idempotent: skips pip when pyproject.toml and the constraints are
# unchanged since the last successful install (stamp .venv/.lamops-installed).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  command -v "$python" >/dev/null || { echo "setup.sh: $python not found; set PYTHON to a Python 3.11" >&2; exit 1; }
  "$python" -m venv .venv
fi

stamp=.venv/.lamops-installed
want=$(cat pyproject.toml scripts/constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
pip=(.venv/bin/python -m pip install --progress-bar off)
"${pip[@]}" --upgrade pip
# torch first and pinned for every later resolve: otherwise pip may pick a newer CUDA build.
"${pip[@]}" torch==2.13.0
"${pip[@]}" -c scripts/constraints.txt -e ".[dev]"
echo "$want" > "$stamp"
