#!/usr/bin/env bash
# Build a wheelhouse: every pinned requirement plus a wheel of the prosperity package, in one folder, for an
# install with no internet (a secure research environment):
#
#   bash tools/wheelhouse.sh wheelhouse            # or: make wheelhouse
#   # copy the folder in through the environment's file-transfer route, then, inside:
#   python3.11 -m venv .venv
#   .venv/bin/python -m pip install --no-index --find-links wheelhouse -r wheelhouse/requirements.txt
#
# The wheels match the Python and platform of the interpreter that builds them (by default the project's
# .venv: CPython 3.11, this machine's OS). For another target platform, e.g. a Windows desktop, set PLATFORM
# (a pip platform tag) and the script downloads binary wheels for that platform instead of building:
#
#   PLATFORM=win_amd64 bash tools/wheelhouse.sh wheelhouse-windows
#
# Environment: PYTHON (interpreter whose pip builds the wheelhouse; default .venv/bin/python),
# PLATFORM (optional pip platform tag), PY_VERSION (default 3.11, only with PLATFORM).
set -euo pipefail

DIR="${1:-wheelhouse}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
PIP=("$PY" -m pip --disable-pip-version-check)

if [[ ! -x "$PY" ]]; then
    echo "wheelhouse.sh: no Python at $PY (run 'make setup' or set PYTHON)" >&2
    exit 1
fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
start=$SECONDS

if [[ -n "${PLATFORM:-}" ]]; then
    # binary wheels for another platform: pip cannot build for it, so every requirement must have a wheel
    "${PIP[@]}" download -q --only-binary=:all: --platform "$PLATFORM" \
        --python-version "${PY_VERSION:-3.11}" --implementation cp \
        -r "$ROOT/requirements.txt" -d "$DIR"
else
    # pip wheel downloads wheels where they exist and builds the few source-only packages, so the offline
    # install never needs a compiler or a build backend
    "${PIP[@]}" wheel -q -r "$ROOT/requirements.txt" -w "$DIR"
fi
# the package itself (pure Python: one wheel for every platform), built from a clean copy of the sources so
# that no stale build/ folder or egg-info in the working tree can leak into the wheel
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT
cp "$ROOT/pyproject.toml" "$ROOT/README.md" "$SRC/"
(cd "$ROOT" && tar --exclude='__pycache__' --exclude='*.egg-info' -cf - src) | (cd "$SRC" && tar -xf -)
"${PIP[@]}" wheel -q --no-deps --no-build-isolation "$SRC" -w "$DIR"

version="$("$PY" - "$ROOT/pyproject.toml" <<'EOF'
import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])
EOF
)"
# the requirements to install from the wheelhouse: the pins and the package at this version
{
    echo "# Offline install: pip install --no-index --find-links <this folder> -r <this file>"
    grep -v '^[[:space:]]*#' "$ROOT/requirements.txt" | grep -v '^[[:space:]]*$'
    echo "prosperity==$version"
} > "$DIR/requirements.txt"

(cd "$DIR" && sha256sum -- *.whl > SHA256SUMS)
n=$(ls "$DIR"/*.whl | wc -l)
size=$(du -sh "$DIR" | cut -f1)
echo "wheelhouse: $n wheels ($size) in $DIR in $((SECONDS - start)) s"
echo "install offline with: python -m pip install --no-index --find-links $DIR -r $DIR/requirements.txt"
