"""Hostile use of prosperity.synthetic (issue 12): malformed arguments, folders that are partial, edited, mixed
from two seeds or of another kind, and a writer killed half-way. Each case gets a clear error or a correct result;
no folder a reader accepts is ever a mix or a fragment."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from prosperity import _io, synthetic
from prosperity._checks import InputError, InputTypeError

SMALL = dict(n_workers=3_000, n_enterprises=300)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """Two complete folders written from seeds 1 and 2 (same size)."""
    base = tmp_path_factory.mktemp("seeds")
    worlds = {s: synthetic.england(seed=s, **SMALL) for s in (1, 2)}
    for s, se in worlds.items():
        se.to_parquet(base / f"seed{s}")
    return base, worlds


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------- england arguments


@pytest.mark.parametrize("kwargs, kind, match", [
    (dict(years=(2019, 2005)), InputError, "reversed"),
    (dict(years=(2005,)), InputTypeError, "pair"),
    (dict(years="2005-2019"), InputTypeError, "pair"),
    (dict(years=(2005.0, 2019)), InputTypeError, "two integers"),
    (dict(years=(1990, 2000)), InputError, "within 2002-2023"),
    (dict(years=(2010, 2010)), InputError, "two years"),
    (dict(seed="0"), InputTypeError, "seed must be a non-negative integer"),
    (dict(seed=1.5), InputTypeError, "seed"),
    (dict(seed=True), InputTypeError, "seed"),
    (dict(seed=None), InputTypeError, "seed"),
    (dict(seed=-3), InputError, "seed"),
    (dict(size=None), InputError, "size must be one of"),
    (dict(size=["workshop"]), InputError, "size must be one of"),
    (dict(sample="ASHE"), InputError, "sample must be None or 'ashe'"),
    (dict(sample=np.array([1, 2])), InputError, "sample"),
    (dict(n_wrokers=10), InputTypeError, "unknown DGP overrides \\['n_wrokers'\\]"),
    (dict(n_workers="3000"), InputTypeError, "n_workers must be an integer"),
    (dict(n_workers=3000.0), InputTypeError, "n_workers must be an integer"),
    (dict(n_workers=0), InputError, "n_workers must be at least 1"),
    (dict(sigma_u="wide"), InputTypeError, "sigma_u must be a finite number"),
    (dict(sigma_u=float("nan")), InputTypeError, "sigma_u must be a finite number"),
    (dict(sigma_e=-0.1), InputError, "sigma_e must be non-negative"),
    (dict(gamma=(0.1, 0.2)), InputTypeError, "gamma must be a sequence of 4"),
    (dict(gamma="abcd"), InputTypeError, "gamma"),
    (dict(move_rate=1.5), InputError, "move_rate must be in"),
    (dict(firm_sort=True), InputTypeError, "firm_sort"),
])
def test_england_bad_arguments_clear_errors(kwargs, kind, match):
    with pytest.raises(kind, match=match) as err:
        synthetic.england(**{**SMALL, **kwargs})
    assert isinstance(err.value, InputError)  # one exception family (ValueError; TypeError for types)
    assert "Traceback" not in str(err.value)


def test_write_population_bad_arguments(tmp_path):
    for kwargs, match in [(dict(fraction=0), "fraction"), (dict(fraction="all"), "fraction"),
                          (dict(block_size=0), "block_size"), (dict(seed="x"), "seed"),
                          (dict(years=(2019, 2005)), "reversed")]:
        with pytest.raises(InputError, match=match):
            synthetic.write_population(tmp_path / "pop", quiet=True, **{**SMALL, **kwargs})
    assert not (tmp_path / "pop").exists()


def test_numpy_arguments_accepted_and_recorded_as_plain_values(tmp_path):
    """numpy integers and arrays are valid values; meta and the manifest store them as plain JSON."""
    se = synthetic.england(seed=np.int64(1), years=(np.int64(2010), 2012), n_workers=np.int64(800),
                           n_enterprises=100, gamma=np.array([0.01, 0.0, 0.0, 0.0]))
    assert se.meta["seed"] == 1 and se.meta["overrides"]["gamma"] == [0.01, 0.0, 0.0, 0.0]
    se.to_parquet(tmp_path / "np")
    man = json.loads((tmp_path / "np" / _io.MANIFEST).read_text())
    assert man["meta"]["dgp"]["n_workers"] == 800 and man["meta"]["years"] == [2010, 2012]


def test_one_worker_or_one_firm_world_has_undefined_correlation():
    """Degenerate but legal worlds run; a correlation with a zero variance is NaN, not a ZeroDivisionError."""
    for kw in (dict(n_workers=1, n_enterprises=50), dict(n_workers=500, n_enterprises=1)):
        se = synthetic.england(seed=0, years=(2010, 2012), **kw)
        assert np.isnan(se.truth.variance["corr_alpha_psi"])
        assert len(se.tables["jobs"]) > 0


def test_main_job_and_calibration_bad_inputs(two_seeds):
    jobs = two_seeds[1][1].tables["jobs"]
    with pytest.raises(KeyError, match="table 'jobs', column 'gpay': no column"):
        synthetic.main_job(jobs.drop(columns="gpay"))
    bad = jobs.astype({"piden": "Int64"})
    bad.loc[[3, 8], "piden"] = pd.NA
    with pytest.raises(InputError, match="table 'jobs', column 'piden': 2 missing") as err:
        synthetic.main_job(bad)
    assert err.value.table == "jobs" and err.value.column == "piden"
    with pytest.raises(TypeError, match="needs a synthetic.SyntheticEngland"):
        synthetic.calibration(jobs)


def test_to_parquet_refuses_to_replace_a_file(tmp_path, two_seeds):
    target = tmp_path / "a_file.parquet"
    target.write_bytes(b"not a folder")
    with pytest.raises(ValueError, match="not a folder"):
        two_seeds[1][1].to_parquet(target)
    assert target.read_bytes() == b"not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file.parquet"]


# ----------------------------------------------------------------------------------------------- load()


def test_load_refuses_empty_and_unmarked_folders(tmp_path, two_seeds):
    base, _ = two_seeds
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no manifest.json"):
        synthetic.load(tmp_path / "empty")
    # an old-style folder: the files are there but nothing marks it complete
    d = _copy(base / "seed1", tmp_path / "unmarked")
    (d / _io.MANIFEST).unlink()
    with pytest.raises(ValueError, match="no manifest.json"):
        synthetic.load(d)
    (d / _io.MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        synthetic.load(d)
    with pytest.raises(ValueError, match="no such folder"):
        synthetic.load(tmp_path / "absent")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match="no such folder"):
        synthetic.load(tmp_path / "a_file")


def test_load_refuses_a_folder_of_another_kind(tmp_path, two_seeds):
    base, worlds = two_seeds
    with _io.atomic_folder(tmp_path / "panel", kind="linked_panel", meta={"seed": 1}) as tmp:
        worlds[1].tables["jobs"].to_parquet(tmp / "workers.parquet")
    with pytest.raises(ValueError, match="'linked_panel' folder, expected 'synthetic_england'"):
        synthetic.load(tmp_path / "panel")
    # the right kind but not a synthetic England's files (a manifest over an unrelated folder)
    with _io.atomic_folder(tmp_path / "odd", kind=synthetic.KIND) as tmp:
        (tmp / "readme.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a complete synthetic England"):
        synthetic.load(tmp_path / "odd")


@pytest.mark.parametrize("rel", ["tables/jobs.parquet", "truth/mess.parquet", "truth/variance.json", "meta.json"])
def test_load_refuses_a_missing_file(tmp_path, two_seeds, rel):
    d = _copy(two_seeds[0] / "seed1", tmp_path / "f")
    (d / rel).unlink()
    with pytest.raises(ValueError, match=f"{rel} missing"):
        synthetic.load(d)


def test_load_refuses_files_swapped_between_seeds(tmp_path, two_seeds):
    """Jobs of one seed with the truth of another: the manifest ties the files written together."""
    base, _ = two_seeds
    for rel in ("truth/person_years.parquet", "tables/jobs.parquet", "truth/variance.json"):
        d = _copy(base / "seed1", tmp_path / rel.replace("/", "_"))
        shutil.copyfile(base / "seed2" / rel, d / rel)
        with pytest.raises(ValueError, match=rel.split("/")[1]):
            synthetic.load(d)
    # swapping the manifest along with the file is a different folder: every other file then mismatches
    d = _copy(base / "seed1", tmp_path / "both")
    shutil.copyfile(base / "seed2" / "tables" / "jobs.parquet", d / "tables" / "jobs.parquet")
    shutil.copyfile(base / "seed2" / _io.MANIFEST, d / _io.MANIFEST)
    with pytest.raises(ValueError, match="checksum differs|bytes, manifest|rows, manifest"):
        synthetic.load(d)


def test_load_refuses_an_edited_file(tmp_path, two_seeds):
    base, worlds = two_seeds
    d = _copy(base / "seed1", tmp_path / "edited")
    jobs = pd.read_parquet(d / "tables" / "jobs.parquet")
    jobs.loc[0, "gpay"] += 1.0  # same rows, same size class: only the checksum can tell
    jobs.to_parquet(d / "tables" / "jobs.parquet", index=False)
    with pytest.raises(ValueError, match="jobs.parquet"):
        synthetic.load(d)
    d2 = _copy(base / "seed1", tmp_path / "appended")
    with open(d2 / "truth" / "coefficients.json", "a") as f:
        f.write(" ")
    with pytest.raises(ValueError, match="coefficients.json has"):
        synthetic.load(d2)
    d3 = _copy(base / "seed1", tmp_path / "extra")
    worlds[2].tables["cpi"].to_parquet(d3 / "tables" / "cpi_2.parquet")
    with pytest.raises(ValueError, match="cpi_2.parquet is not in the manifest"):
        synthetic.load(d3)
    # the untouched folder still loads, with its own seed
    assert synthetic.load(base / "seed1").meta["seed"] == 1


def test_manifest_records_seed_size_years_and_dgp(two_seeds):
    base, worlds = two_seeds
    man = _io.verify(base / "seed2", kind=synthetic.KIND)
    meta = man["meta"]
    assert meta["seed"] == 2 and meta["size"] == "workshop" and meta["years"] == [2005, 2019]
    assert meta["writer"] == "SyntheticEngland.to_parquet"
    assert meta["dgp"] == worlds[2].truth.coefficients["dgp"]
    assert meta["dgp"]["n_workers"] == SMALL["n_workers"]
    assert man["files"]["tables/jobs.parquet"]["rows"] == len(worlds[2].tables["jobs"])


# ----------------------------------------------------------------------------------------- interrupted writes


def test_failed_to_parquet_leaves_earlier_folder_intact(tmp_path, two_seeds):
    """A writer that fails half-way (an unconvertible table after jobs was written) changes nothing."""
    base, worlds = two_seeds
    target = _copy(base / "seed1", tmp_path / "target")
    before = _io.verify(target)["files"]
    se = worlds[2]
    broken = synthetic.SyntheticEngland(tables={**se.tables, "zz_bad": pd.DataFrame({"a": [1, "x"]})},
                                        truth=se.truth, meta=se.meta)
    with pytest.raises(Exception):
        broken.to_parquet(target)
    assert _io.verify(target)["files"] == before
    assert synthetic.load(target).meta["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]  # no partial folder left behind


_WRITER = r"""
import sys
from prosperity import synthetic
synthetic.write_population(sys.argv[1], seed=7, block_size=1_000, n_workers=40_000, n_enterprises=2_000,
                           quiet=True)
"""


def _kill_writer_half_way(target: Path) -> list[Path]:
    """Start a writer process on ``target``; SIGKILL it once it has written part of its jobs file."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            parts = list(target.parent.glob(f".{target.name}.partial-*"))
            if any((p / "tables" / "jobs.parquet").is_file() and (p / "tables" / "jobs.parquet").stat().st_size
                   for p in parts):
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.01)
        else:
            pytest.fail("the writer never started writing")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    return list(target.parent.glob(f".{target.name}.partial-*"))


def test_writer_killed_half_way_leaves_no_folder_a_reader_accepts(tmp_path, two_seeds):
    base, worlds = two_seeds
    # over an earlier complete folder: it stays as it was
    target = _copy(base / "seed1", tmp_path / "world")
    before = _io.verify(target)["files"]
    partial = _kill_writer_half_way(target)
    assert partial, "the killed writer's partial folder should remain (and be refused)"
    assert _io.verify(target)["files"] == before
    back = synthetic.load(target)
    assert back.meta["seed"] == 1
    assert_frame_equal(back.tables["jobs"], worlds[1].tables["jobs"])
    for p in partial:
        with pytest.raises(ValueError, match="no manifest.json"):
            synthetic.load(p)
    # with no earlier folder: nothing appears at the target
    fresh = tmp_path / "fresh"
    partial = _kill_writer_half_way(fresh)
    assert not fresh.exists()
    with pytest.raises(ValueError, match="no such folder"):
        synthetic.load(fresh)
    for p in partial:
        with pytest.raises(ValueError):
            synthetic.load(p)
