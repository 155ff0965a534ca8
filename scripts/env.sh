# Environment for running lamops: sourced by scripts/run.sh and scripts/test.sh.
# Nothing here reaches the internet, and some of these libraries try (telemetry, model hubs).
# Values already set in the environment win, so cluster mode can switch them off or on.
# tests/conftest.py reads the export lines below: keep their form, export NAME="${NAME:-value}".
export DO_NOT_TRACK="${DO_NOT_TRACK:-1}"
export PREFECT_SERVER_ANALYTICS_ENABLED="${PREFECT_SERVER_ANALYTICS_ENABLED:-false}"
export GX_ANALYTICS_ENABLED="${GX_ANALYTICS_ENABLED:-false}"
export DVC_NO_ANALYTICS="${DVC_NO_ANALYTICS:-1}"
export RAY_USAGE_STATS_ENABLED="${RAY_USAGE_STATS_ENABLED:-0}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
# torch's OpenMP threads spin while they wait for each other (libgomp's default): beside another busy process
# (a Ray worker, a second test process, any job on the machine) a 2-thread training step ran 6x slower, 580-660
# against 3,600-4,100 tokens/s (measured 2026-12-04, 2 cores). Passive threads sleep instead of spinning.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}"
# DVC keeps per-repo index caches here; its default, /var/tmp/dvc, may not be writable.
export DVC_SITE_CACHE_DIR="${DVC_SITE_CACHE_DIR:-/tmp/lamops-dvc-site}"
# Prefect's ephemeral server needs more than its default 20 s to start on a 2-core machine.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="${PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS:-120}"
# Where a Prefect worker finds flows/ (prefect.yaml's pull step): this checkout, unless set.
LAMOPS_CODE_DIR="${LAMOPS_CODE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export LAMOPS_CODE_DIR
