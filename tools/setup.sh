#!/bin/sh
# Set up what is missing, then run the demo or the test suite: what `make demo`, `make test` and
# .ci/run call, so that the three cannot drift apart.
#
#   sh tools/setup.sh                set up only
#   sh tools/setup.sh demo [OUT]     set up, then separate the bundled demo mixture into OUT (out/demo)
#   sh tools/setup.sh test [ARGS]    set up, then run the test suite (python -m pytest -q -n auto
#                                    --maxprocesses=4 ARGS: one process a core, at most 4)
#
# Each step runs only when needed, so a second call is fast:
#   1. .venv (or $VENV) is created when it has no python, with the first Python >= 3.10 found
#      ($PYTHON, python3, python3.13 ... python3.10), and its pip upgraded;
#   2. torch is installed when the venv has none: plain `torch` (the default build, with CUDA) when
#      nvidia-smi finds a GPU, else the pinned CPU-tested version below; $TORCH_SPEC overrides
#      both (e.g. TORCH_SPEC=torch==2.13.0). An installed torch is never replaced;
#   3. this package and its test dependencies (pip install -e ".[test]") when it is not installed
#      from this folder or pyproject.toml changed since the last install (a copy is kept in the
#      venv as the stamp).
set -eu
cd "$(dirname "$0")/.."

TORCH_PIN="torch==2.13.0"
VENV=${VENV:-.venv}
VPY="$VENV/bin/python"
STAMP="$VENV/.diffsep-pyproject.toml"

say() { echo "setup: $*" >&2; }

find_python() {
    for p in ${PYTHON:-} python3 python3.13 python3.12 python3.11 python3.10; do
        if command -v "$p" >/dev/null 2>&1 &&
            "$p" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

if [ ! -x "$VPY" ]; then
    py=$(find_python) || { say "error: no Python >= 3.10 found (set PYTHON=/path/to/python3)"; exit 1; }
    say "creating $VENV with $("$py" -V 2>&1)"
    "$py" -m venv "$VENV"
    "$VPY" -m pip install --quiet --upgrade pip
fi

# What is missing, in one interpreter start (-I: the checkout itself is not on the path, so
# "diffsep" is found only when installed; torch is looked up, not imported, which takes seconds).
missing=$("$VPY" -I - "$(pwd)" <<'EOF'
import importlib.util
import os
import sys

here = os.path.realpath(sys.argv[1])
out = []
if importlib.util.find_spec("torch") is None:
    out.append("torch")
spec = importlib.util.find_spec("diffsep")
if spec is None or not os.path.realpath(spec.origin or "").startswith(os.path.join(here, "")):
    out.append("diffsep")
print(" ".join(out))
EOF
)

case " $missing " in *" torch "*)
    if [ -n "${TORCH_SPEC:-}" ]; then
        spec=$TORCH_SPEC why="TORCH_SPEC"
    elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
        spec=torch why="an NVIDIA GPU was found: the default build, with CUDA"
    else
        spec=$TORCH_PIN why="no NVIDIA GPU: the tested CPU version"
    fi
    say "installing $spec ($why)"
    "$VPY" -m pip install "$spec"
esac

case " $missing " in *" diffsep "*) stale=1 ;; *)
    if cmp -s pyproject.toml "$STAMP"; then stale=0; else stale=1; fi
esac
if [ "$stale" = 1 ]; then
    say "installing diffsep from $(pwd) with its test dependencies"
    rm -f "$STAMP"
    "$VPY" -m pip install -e ".[test]"
    cp pyproject.toml "$STAMP"
fi

action=${1:-}
[ $# -gt 0 ] && shift
case "$action" in
    "") say "$VENV is ready (. $VENV/bin/activate)" ;;
    demo) exec "$VENV/bin/diffsep" separate --demo -o "${1:-out/demo}" ;;
    test) exec "$VPY" -m pytest -q -n auto --maxprocesses=4 "$@" ;;
    *) say "error: unknown action '$action' (demo, test, or none)"; exit 2 ;;
esac
