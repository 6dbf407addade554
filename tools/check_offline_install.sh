#!/usr/bin/env bash
# End-to-end check of the offline install: build the wheelhouse, create a fresh virtual environment, install
# everything from the wheelhouse with no package index (pip --isolated: no user or site pip configuration,
# so no other wheel source can sneak in), run `pip check`, and import the package from outside the source tree.
#
#   bash tools/check_offline_install.sh            # about 100 s on 2 cores with a warm pip cache
#
# Environment: WORK (scratch folder, default a new temporary folder, removed afterwards),
# PYTHON (interpreter for the wheelhouse; default .venv/bin/python), BASE_PYTHON (interpreter for the fresh
# venv; default the same Python as PYTHON's base).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
BASE="${BASE_PYTHON:-$("$PY" -c 'import sys; print(sys._base_executable)')}"
if [[ -n "${WORK:-}" ]]; then
    mkdir -p "$WORK"; KEEP=1
else
    WORK="$(mktemp -d)"; KEEP=0
fi
cleanup() { if [[ $KEEP == 0 ]]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT

t0=$SECONDS
PYTHON="$PY" bash "$ROOT/tools/wheelhouse.sh" "$WORK/wheelhouse"
t1=$SECONDS
"$BASE" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip --isolated install -q --disable-pip-version-check --no-index \
    --find-links "$WORK/wheelhouse" -r "$WORK/wheelhouse/requirements.txt"
"$WORK/venv/bin/python" -m pip --isolated check
t2=$SECONDS
cd "$WORK"
"$WORK/venv/bin/python" - <<'PY'
import pandas as pd
import prosperity
from prosperity import geography, sdc

assert "site-packages" in prosperity.__file__, prosperity.__file__
assert len(geography.districts()) == 296
t = pd.DataFrame({"n_people": [50, 3], "n_firms": [12, 2], "gap": [0.1, 0.2]}, index=["A", "B"])
assert sdc.check(t).failures["cell"].unique().tolist() == ["B"]
print(f"prosperity {prosperity.__version__} imported from {prosperity.__file__}")
PY
echo "offline install OK: wheelhouse $((t1 - t0)) s, fresh venv + offline install $((t2 - t1)) s, total $((SECONDS - t0)) s"
