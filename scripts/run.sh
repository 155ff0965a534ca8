#!/usr/bin/env bash
# The main job: install, then run the whole pipeline on the embedded default profile (params.yaml).
# Arguments go to `lamops pipeline`, e.g. --profile ci or --stages templates.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
exec .venv/bin/lamops pipeline "$@"
