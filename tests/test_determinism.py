"""Same seed, same bytes: the whole chain from the synthetic raw tables to the decompositions, run five times in
fresh processes with the default number of threads, gives identical hashes at every stage (issue 12).

Each run hashes, with ``pandas.util.hash_pandas_object`` over values and index (floats compared bit for bit):
the raw tables; the linked workers, firms, places, sites and ledger; the AKM worker and firm effects on the
leave-one-out set; the plug-in and KSS (JLA leverages) decompositions; the people / firms / place gap
decomposition by district. A difference in the last bit of any float anywhere fails the test and names the stage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

CHAIN = textwrap.dedent(
    """
    import hashlib, json, sys
    import numpy as np
    import pandas as pd
    from prosperity import akm, link, places, synthetic

    def h(obj):
        if isinstance(obj, pd.Series):
            obj = obj.to_frame()
        if isinstance(obj, pd.DataFrame):
            obj = obj.reset_index(drop=False)
            obj.columns = [str(c) for c in obj.columns]
            cols = "|".join(f"{c}:{t}" for c, t in obj.dtypes.astype(str).items())
            vals = pd.util.hash_pandas_object(obj, index=False).to_numpy()
            return hashlib.sha256(cols.encode() + vals.tobytes()).hexdigest()[:16]
        return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]

    out = {}
    se = synthetic.england("workshop", seed=3, n_workers=8000, n_enterprises=900)
    for name, t in sorted(se.tables.items()):
        out["raw." + name] = h(t)
    lk = link.build_panel(se.tables, quiet=True)
    for name in ("workers", "firms", "places", "ledger", "sites"):
        t = getattr(lk, name, None)
        if isinstance(t, pd.DataFrame):
            out["link." + name] = h(t)
    fit = akm.fit(lk.workers, "lhw", "piden", "entref", connected="leave_one_out")
    out["akm.worker_effects"] = h(fit.worker_effects)
    out["akm.firm_effects"] = h(fit.firm_effects)
    for method, kw in (("plugin", {}), ("kss", {"leverage": "jla", "draws": 50, "seed": 1})):
        d = fit.decompose(method, **kw)
        out["variance." + method] = h(tuple(float(getattr(d, k)) for k in
                                            ("var_alpha", "var_psi", "cov_alpha_psi", "var_resid")))
    gd = places.decompose_gaps(lk, level="lad")
    out["places.gaps"] = h(gd.to_frame())
    json.dump(out, sys.stdout)
    """
)


@pytest.mark.slow
def test_same_seed_same_bytes_across_five_processes():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    runs = []
    for _ in range(5):
        res = subprocess.run([sys.executable, "-c", CHAIN], capture_output=True, text=True, timeout=600, env=env)
        assert res.returncode == 0, res.stderr[-3000:]
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    first = runs[0]
    assert len(first) >= 15, first
    for i, r in enumerate(runs[1:], start=2):
        diff = sorted(k for k in first if r.get(k) != first[k])
        assert not diff, f"run {i} differs from run 1 at: {diff}"
