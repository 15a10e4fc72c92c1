#!/usr/bin/env bash
# Create or reuse a separate virtual environment for an integration (idempotent), never touching .venv.
#
# Usage: scripts/setup_integration_env.sh deploy|label|tracking
#   deploy   -> .venv-deploy:   the main .venv's packages + requirements-deploy.txt (MONAI Deploy App SDK, Holoscan)
#   label    -> .venv-label:    the main .venv's packages + requirements-label.txt  (MONAI Label server)
#   tracking -> .venv-tracking: the main .venv's packages + the `tracking` extra of setup.cfg (MLflow, its UI server)
# Environment: MEDTL_INTEGRATION_VENV overrides the folder; MEDTL_VENV the main environment (default .venv), whose
# interpreter creates it.
#
# Every kind is an overlay of the main environment, built in tens of seconds rather than minutes: a venv of the main
# .venv's interpreter whose site-packages holds a .pth file that adds .venv's site-packages (with its own .pth files,
# so the editable medtl-monai too) behind its own, so torch 2.13.0 (CPU), MONAI and the rest are never reinstalled.
# Then only the kind's packages are installed into the overlay: for tracking the `tracking` extra with every package
# of .venv frozen as a constraint; for deploy and label the requirements file with the base stack's installed versions
# (torch, numpy, MONAI, ignite, pydicom, nibabel, ITK, SimpleITK, scipy, Pillow) frozen as constraints, so that the
# integration packages cannot move them away from what the base environment runs and tests (other packages they pin
# go into the overlay and shadow .venv's copy in that environment only).
# Requirement lines marked "no-deps" are installed with `pip install --no-deps`. MONAI Deploy installs `monai.deploy`
# into the `monai` package folder, so the deploy overlay holds its own copy of .venv's MONAI (same version) beside it.
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

BASE="${MEDTL_VENV:-$ROOT/.venv}/bin/python"  # the main environment, as scripts/test.sh finds it
[ -x "$BASE" ] || { echo "[setup-$KIND] $BASE: missing (the $KIND environment extends the main .venv)" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || { echo "[setup-$KIND] creating virtual environment $VENV"; "$BASE" -m venv "$VENV"; }
rm -f "$STAMP"
BASE_SITE="$("$BASE" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
SITE="$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
# site.addsitedir (not a bare path line) so that .venv's own .pth files, the editable install among them, count;
# "00-" so that it is read before the overlay's own .pth files (holoscan's wheel-axle one imports filelock from .venv)
echo "import site; site.addsitedir('$BASE_SITE')" > "$SITE/00-medtl-base-venv.pth"
CONSTRAINTS="$VENV/base-constraints.txt"

if [ "$KIND" = tracking ]; then
  EXTRA="$("$BASE" -c "import configparser, sys; c = configparser.ConfigParser(); c.read(sys.argv[1]); \
print(' '.join(c['options.extras_require']['tracking'].split()))" "$ROOT/setup.cfg")"
  echo "[setup-$KIND] installing $EXTRA into $VENV on top of .venv's packages"
  "$BASE" -m pip freeze --exclude-editable --disable-pip-version-check | grep -v "^-e " > "$CONSTRAINTS"
  # shellcheck disable=SC2086
  quiet "${PIP[@]}" $EXTRA -c "$CONSTRAINTS"
  CHECK="import mlflow, mlflow.server, monai, medtl_monai, torch, sqlalchemy, alembic
assert torch.__file__.startswith('$BASE_SITE'), torch.__file__"
else
  echo "[setup-$KIND] installing requirements-$KIND.txt into $VENV on top of .venv's packages"
  "$BASE" -m pip freeze --exclude-editable --disable-pip-version-check \
    | grep -iE "^(torch|numpy|monai|pytorch-ignite|pydicom|nibabel|simpleitk|itk|scipy|pillow)==" > "$CONSTRAINTS"
  NODEPS=$(sed -n 's/^\([^#[:space:]][^#[:space:]]*\)[[:space:]]*#[[:space:]]*no-deps.*$/\1/p' "$REQS")
  RESOLVED="$VENV/requirements-resolved.txt"
  grep -v "no-deps" "$REQS" > "$RESOLVED"
  quiet "${PIP[@]}" -r "$RESOLVED" -c "$CONSTRAINTS"
  if [ -n "$NODEPS" ]; then
    # shellcheck disable=SC2086
    quiet "${PIP[@]}" --no-deps $NODEPS
  fi
  if [ "$KIND" = deploy ]; then  # monai.deploy must sit in the same monai folder as MONAI core
    quiet "${PIP[@]}" --no-deps --ignore-installed "$(grep -i '^monai==' "$CONSTRAINTS")"
  fi
  if [ "$KIND" = label ]; then
    # pydicom-seg 0.4.1 (imported by the MONAI Label server) needs a module that pydicom 3 removed: see the file.
    cp "$ROOT/monailabel_app/pydicom3_compat.py" "$SITE/medtl_pydicom3_compat.py"
    echo "import medtl_pydicom3_compat" > "$SITE/medtl_pydicom3_compat.pth"
  fi
  case "$KIND" in
    deploy) CHECK="import monai.deploy.core, holoscan, medtl_monai, torch; assert torch.__version__.startswith('2.13.0')
assert torch.__file__.startswith('$BASE_SITE'), torch.__file__" ;;
    label) CHECK="import monailabel.app, monailabel.main, monailabel.tasks.infer.basic_infer, medtl_monai, torch
assert torch.__version__.startswith('2.13.0') and torch.__file__.startswith('$BASE_SITE'), torch.__file__" ;;
  esac
fi
"$VENV/bin/python" -c "$CHECK" || { echo "[setup-$KIND] import check failed" >&2; exit 1; }
echo "$WANT" > "$STAMP"
echo "[setup-$KIND] done in $((SECONDS - start)) s ($(du -sm "$VENV" | cut -f1) MB)"
