#!/usr/bin/env bash
# Install, then run the tests. Arguments go to pytest, e.g. -m "not slow" or tests/test_config.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests (arguments: ${*:-none}); there must be tests, so this fails" >&2
fi
exit "$status"
