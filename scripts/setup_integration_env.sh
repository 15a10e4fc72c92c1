#!/usr/bin/env bash
# Create or reuse a separate virtual environment for an integration (idempotent), never touching .venv.
#
# Usage: scripts/setup_integration_env.sh deploy|label|tracking
#   deploy   -> .venv-deploy:   medtl-monai + requirements-deploy.txt (MONAI Deploy App SDK, Holoscan)
#   label    -> .venv-label:    medtl-monai + requirements-label.txt  (MONAI Label server)
#   tracking -> .venv-tracking: the main .venv's packages (seen through a .pth file, not reinstalled) + the
#                               `tracking` extra of setup.cfg (MLflow with its UI server)
# Environment: MEDTL_INTEGRATION_VENV overrides the folder; PYTHON the interpreter that creates it (python3; the
# tracking kind uses the main environment's, MEDTL_VENV or .venv).
#
# Order: torch==2.13.0 first (the local CPU wheel; an unpinned torch would pull a multi-GB CUDA build), then
# `pip install -e .`, then the requirements with the base stack's installed versions (torch, numpy, MONAI, ignite,
# pydicom, nibabel, ITK, SimpleITK, scipy, Pillow) frozen as constraints, so that the integration packages cannot move
# them away from what the base environment runs and tests.
# Requirement lines marked "no-deps" are installed with `pip install --no-deps`.
# The tracking kind is built differently, in seconds rather than minutes: a venv of the main .venv's interpreter whose
# site-packages holds a .pth file that adds .venv's site-packages (with its own .pth files, so the editable
# medtl-monai too) behind its own; then only the `tracking` extra is installed, with every package of .venv frozen as a
# constraint, so that pip finds torch, MONAI and the rest already satisfied and installs only MLflow and what it adds.
# A stamp file records a hash of the dependency files and this script: a second run installs nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIND="${1:-}"
case "$KIND" in
  deploy|label) REQS="$ROOT/requirements-$KIND.txt" ;;
  tracking) REQS="$ROOT/setup.cfg" ;;
  *) echo "usage: $0 deploy|label|tracking" >&2; exit 2 ;;
esac
VENV="${MEDTL_INTEGRATION_VENV:-$ROOT/.venv-$KIND}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.medtl-integration-stamp"
WANT="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$REQS" "${BASH_SOURCE[0]}" "$ROOT/monailabel_app/pydicom3_compat.py" | sha256sum | cut -c1-16) kind=$KIND"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && grep -qxF "$WANT" "$STAMP"; then
  exit 0
fi

start=$SECONDS
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-compile)  # .pyc written on first import
quiet() { # run pip, dropping its notes about absent local indexes; keep its exit status
  set +e
  "$@" 2>&1 | grep -v "is ignored"
  local rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then echo "[setup-$KIND] failed (exit $rc): $*" >&2; exit "$rc"; fi
}

if [ "$KIND" = tracking ]; then
  BASE="${MEDTL_VENV:-$ROOT/.venv}/bin/python"  # the main environment, as scripts/test.sh finds it
  [ -x "$BASE" ] || { echo "[setup-$KIND] $BASE: missing (the tracking environment extends the main .venv)" >&2; exit 1; }
  [ -x "$VENV/bin/python" ] || { echo "[setup-$KIND] creating virtual environment $VENV"; "$BASE" -m venv "$VENV"; }
  rm -f "$STAMP"
  BASE_SITE="$("$BASE" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
  SITE="$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
  # site.addsitedir (not a bare path line) so that .venv's own .pth files, the editable install among them, count
  echo "import site; site.addsitedir('$BASE_SITE')" > "$SITE/medtl_base_venv.pth"
  EXTRA="$("$BASE" -c "import configparser, sys; c = configparser.ConfigParser(); c.read(sys.argv[1]); \
print(' '.join(c['options.extras_require']['tracking'].split()))" "$ROOT/setup.cfg")"
  echo "[setup-$KIND] installing $EXTRA into $VENV on top of .venv's packages"
  CONSTRAINTS="$VENV/base-constraints.txt"
  "$BASE" -m pip freeze --exclude-editable --disable-pip-version-check | grep -v "^-e " > "$CONSTRAINTS"
  # shellcheck disable=SC2086
  quiet "${PIP[@]}" $EXTRA -c "$CONSTRAINTS"
  "$VENV/bin/python" -c "import mlflow, mlflow.server, monai, medtl_monai, torch, sqlalchemy, alembic
assert torch.__file__.startswith('$BASE_SITE'), torch.__file__" \
    || { echo "[setup-$KIND] import check failed" >&2; exit 1; }
  echo "$WANT" > "$STAMP"
  echo "[setup-$KIND] done in $((SECONDS - start)) s ($(du -sm "$VENV" | cut -f1) MB)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup-$KIND] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
rm -f "$STAMP"
echo "[setup-$KIND] installing medtl-monai and requirements-$KIND.txt into $VENV (first run: a few minutes)"
quiet "${PIP[@]}" "torch==2.13.0"
quiet "${PIP[@]}" -e "$ROOT"
CONSTRAINTS="$VENV/base-constraints.txt"
"$VENV/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check \
  | grep -iE "^(torch|numpy|monai|pytorch-ignite|pydicom|nibabel|simpleitk|itk|scipy|pillow)==" > "$CONSTRAINTS"
NODEPS=$(sed -n 's/^\([^#[:space:]][^#[:space:]]*\)[[:space:]]*#[[:space:]]*no-deps.*$/\1/p' "$REQS")
RESOLVED="$VENV/requirements-resolved.txt"
grep -v "no-deps" "$REQS" > "$RESOLVED"
quiet "${PIP[@]}" -r "$RESOLVED" -c "$CONSTRAINTS"
if [ -n "$NODEPS" ]; then
  # shellcheck disable=SC2086
  quiet "${PIP[@]}" --no-deps $NODEPS
fi
if [ "$KIND" = label ]; then
  # pydicom-seg 0.4.1 (imported by the MONAI Label server) needs a module that pydicom 3 removed: see the file.
  SITE="$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
  cp "$ROOT/monailabel_app/pydicom3_compat.py" "$SITE/medtl_pydicom3_compat.py"
  echo "import medtl_pydicom3_compat" > "$SITE/medtl_pydicom3_compat.pth"
fi
case "$KIND" in
  deploy) CHECK="import monai.deploy.core, holoscan, medtl_monai, torch; assert torch.__version__.startswith('2.13.0')" ;;
  label) CHECK="import monailabel.app, monailabel.main, monailabel.tasks.infer.basic_infer, medtl_monai, torch; assert torch.__version__.startswith('2.13.0')" ;;
esac
"$VENV/bin/python" -c "$CHECK" || { echo "[setup-$KIND] import check failed" >&2; exit 1; }
echo "$WANT" > "$STAMP"
echo "[setup-$KIND] done in $((SECONDS - start)) s ($(du -sm "$VENV" | cut -f1) MB)"
