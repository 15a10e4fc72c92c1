#!/usr/bin/env bash
# Create or reuse .venv and install medtl-monai into it (idempotent).
#
# Usage: scripts/setup_env.sh [EXTRAS]      e.g. scripts/setup_env.sh test,bench
# Environment: MEDTL_VENV overrides the virtual-environment folder (default: <repo>/.venv).
# A stamp file in the venv records a hash of the dependency files and the extras; when nothing changed,
# nothing is installed and the script returns in well under a second.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MEDTL_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.medtl-install-stamp"
WANT="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16) extras=[$EXTRAS]"
if [ -f "$STAMP" ] && grep -qxF "$WANT" "$STAMP"; then
  exit 0
fi
echo "[setup] installing medtl-monai${EXTRAS:+[$EXTRAS]} into $VENV (first run: about 2 minutes)"
# pip's notes about absent local indexes are noise here; real errors still surface through the exit code.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "is ignored" || true
# torch first and pinned, so that nothing can pull a multi-GB CUDA build instead of the CPU wheel.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
SPEC="$ROOT"
[ -n "$EXTRAS" ] && SPEC="$ROOT[$EXTRAS]"
set +e
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$SPEC" 2>&1 | grep -v "is ignored"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  echo "[setup] pip install failed (exit $rc)" >&2
  exit "$rc"
fi
"$VENV/bin/python" -c "import torch, monai, medtl_monai" || { echo "[setup] import check failed" >&2; exit 1; }
grep -vF "extras=[$EXTRAS]" "$STAMP" 2>/dev/null > "$STAMP.tmp" || true
echo "$WANT" >> "$STAMP.tmp" && mv "$STAMP.tmp" "$STAMP"
echo "[setup] done"
