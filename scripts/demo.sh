#!/usr/bin/env bash
# The README's main command: set up .venv (idempotent), then run the main job.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
VENV="${MEDTL_VENV:-$ROOT/.venv}"
cd "$ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec "$VENV/bin/python" scripts/bench_networks.py --quick --out "${TMPDIR:-/tmp}/medtl_demo_benchmarks.md"
