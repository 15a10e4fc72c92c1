#!/usr/bin/env bash
# The README's test command: set up .venv (idempotent) and run the whole pytest suite.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k inflation -x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh" test
"$ROOT/scripts/ensure_chromium.sh" || echo "[test] chromium not installed; tests/test_error_report.py will try again or skip" >&2
VENV="${MEDTL_VENV:-$ROOT/.venv}"
cd "$ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec "$VENV/bin/python" -m pytest "$@"
