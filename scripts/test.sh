#!/usr/bin/env bash
# Install, then run the tests. Arguments go to pytest, e.g. -m "not slow" or tests/test_config.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
status=0
# Two workers: the environment sweep (every family x template x 20 seeds) is CPU-bound. loadgroup keeps a
# module marked xdist_group on one worker, so its expensive module fixture is built once.
.venv/bin/python -m pytest -n 2 --dist loadgroup "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests (arguments: ${*:-none}); there must be tests, so this fails" >&2
fi
exit "$status"
