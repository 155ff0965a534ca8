#!/usr/bin/env bash
# Install, then run the tests. Arguments go to pytest, e.g. -m "not slow" or tests/test_config.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
status=0
# Two workers: the environment sweep (every family x template x 20 seeds) is CPU-bound. loadfile: a module
# runs on one worker, so its module fixtures (a trained project, an MLflow stack and pipeline run, two
# `dvc repro` clones) are built once. Not loadgroup: with pytest 9, pytest-xdist 3.8's xdist_group marks do
# nothing (it renames item._nodeid, which pytest 9 no longer reads), so loadgroup spread those modules over
# both workers and built each of those fixtures twice. --no-loadscope-reorder: modules go out in collection
# order, which tests/conftest.py sorts slowest first. --durations: where the time goes, in every CI log.
.venv/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=30 "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests (arguments: ${*:-none}); there must be tests, so this fails" >&2
fi
exit "$status"
