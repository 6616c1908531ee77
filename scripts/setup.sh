#!/usr/bin/env bash
# Set up flawscope in a virtual environment (default .venv) on a machine with only Python and pip.
#
# 1. Create the venv with --system-site-packages, so a torch the user already has (e.g. a CUDA
#    build) stays visible and is kept.
# 2. Install torch==2.13.0 only when no torch is importable.
# 3. Pin whatever torch is now installed in a constraints file and install flawscope (+ extras)
#    under that constraint, so the resolver can never replace torch with another build.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-dev}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.flawscope-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0  # already set up for this pyproject.toml
fi

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "setup: no torch importable, installing torch==$TORCH_VERSION"
  "$PY" -m pip install --quiet "torch==$TORCH_VERSION"
fi
installed=$("$PY" -c "import torch; print(torch.__version__)")
echo "setup: using torch $installed (pinned for every later install)"
echo "torch==$installed" > "$VENV/constraints.txt"
"$PY" -m pip install --quiet -c "$VENV/constraints.txt" -e ".[$EXTRAS]"
"$PY" -c "import torch, sys; v = torch.__version__; sys.exit(0 if v == '$installed' else 'setup: torch changed to ' + v)"
touch "$stamp"
