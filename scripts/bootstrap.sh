# Shared by scripts/run and scripts/test: find Python >= 3.12, make .venv, install.
# Sourced, not executed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null
}

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.14 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    # pyenv keeps versions that are not on PATH.
    local root
    root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
    for candidate in "$root"/versions/3.13*/bin/python "$root"/versions/3.12*/bin/python "$root"/versions/3.1[4-9]*/bin/python; do
        if [ -x "$candidate" ] && python_ok "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if [ ! -x .venv/bin/python ] || ! python_ok .venv/bin/python; then
    if ! PY="$(find_python)"; then
        echo "error: this project needs Python 3.12 or newer, and none was found." >&2
        echo "Looked at \$PYTHON, python3.13, python3.12, python3 and pyenv's versions." >&2
        echo "Install one (e.g. 'pyenv install 3.13') or set PYTHON=/path/to/python3.12." >&2
        exit 1
    fi
    echo "Using $PY ($("$PY" --version))" >&2
    rm -rf .venv
    "$PY" -m venv .venv
fi

# The versions CI tested: requirements/<app|test>.txt, every package pinned with its hashes
# (README, "Pinned dependencies"); then the project itself, editable, without resolving again.
LOCK="requirements/${1:-app}.txt"
STAMP=.venv/.installed-$(cat pyproject.toml "$LOCK" | sha1sum | cut -c1-12)-${1:-app}
if [ ! -f "$STAMP" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet --require-hashes -r "$LOCK"
    .venv/bin/python -m pip install --quiet --no-deps -e .
    touch "$STAMP"
fi
