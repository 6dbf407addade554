"""The house rules of the package that a test can check: the import graph, the result pattern, the error format.

- Imports flow one way (CONTRIBUTING.md, "Package modules"): every import of a package module, at module top or
  inside a function, goes to a module of the same or a lower layer, and the graph has no circle.
- Every result class derives from ``prosperity._results.Result``, defines ``summary()`` and ``table``, and its
  ``repr`` is the summary.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
from pathlib import Path

import pandas as pd
import pytest

import prosperity
from prosperity import _checks
from prosperity._results import Result

SRC = Path(prosperity.__file__).parent

# layer of every module (CONTRIBUTING.md): a module may import only from its own layer or lower ones
LAYERS = {
    "_checks": 0, "_results": 0, "_io": 0, "_sparse": 0, "__init__": 0,
    "geography": 1, "classifications": 1, "plots": 1,
    "synthetic": 2, "link": 2, "testing": 2, "source": 2,
    "network": 3, "variance": 3, "akm": 3, "groups": 3, "akm_spark": 3,
    "places": 4, "productivity": 4,
    "sdc": 5, "brief": 5, "policy": 5, "explorer": 5,
}


def _modules() -> dict[str, Path]:
    """Top-level module name -> its files (a subpackage such as ``link/`` counts as one module)."""
    out: dict[str, list[Path]] = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC).parts
        out.setdefault(rel[0].removesuffix(".py"), []).append(p)
    return out


def _imports(path: Path, own: str, inside_sub: bool | None = None) -> set[str]:
    """Package modules imported anywhere in ``path`` (top-level names), relative or absolute.

    ``inside_sub``: the file is in a subpackage (``link/``), where ``from . import x`` is the subpackage's own."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    if inside_sub is None:
        inside_sub = path.parent != SRC
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 0:
                if mod == "prosperity":
                    found.update(a.name for a in node.names)
                elif mod.startswith("prosperity."):
                    found.add(mod.split(".")[1])
            else:
                # relative: from a top-level module, level 1 is the package; inside a subpackage, level 1 is
                # the subpackage itself (its own module) and level 2 the package
                if inside_sub and node.level == 1:
                    continue
                if mod:
                    found.add(mod.split(".")[0])
                else:
                    found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("prosperity."):
                    found.add(a.name.split(".")[1])
    found.discard(own)
    found.discard("__version__")
    return found


def test_every_module_has_a_layer():
    missing = sorted(set(_modules()) - set(LAYERS))
    assert not missing, f"modules without a layer in CONTRIBUTING.md / tests/test_house.py: {missing}"


def test_imports_flow_one_way_without_circles():
    mods = _modules()
    graph = {m: set().union(*(_imports(p, m) for p in files)) & set(mods) for m, files in mods.items()}
    upward = [(m, d) for m, deps in graph.items() for d in deps
              if m != "__init__" and LAYERS.get(d, 99) > LAYERS.get(m, -1)]
    assert not upward, f"imports from a higher layer (module -> imported): {sorted(upward)}"
    # no circle (depth-first search)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cyc = stack[stack.index(d):] + [d]
                raise AssertionError(f"import circle: {' -> '.join(cyc)}")
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_private_core_imports_nothing_from_the_package():
    mods = _modules()
    for core in ("_checks", "_results", "_sparse"):
        deps = set().union(*(_imports(p, core) for p in mods[core])) & set(mods)
        assert not deps, f"{core} imports {deps}"


def test_import_graph_checker_sees_function_level_imports(tmp_path):
    p = tmp_path / "x.py"
    p.write_text("def f():\n    from . import akm\n    from prosperity.places import decompose_gaps\n")
    assert _imports(p, "x", inside_sub=False) == {"akm", "places"}


def _result_classes():
    classes = []
    for info in pkgutil.walk_packages(prosperity.__path__, "prosperity."):
        if info.name.endswith(("testing",)):
            continue
        mod = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(mod, inspect.isclass):
            if obj.__module__ == mod.__name__ and issubclass(obj, Result) and obj is not Result:
                classes.append(obj)
    return classes


def test_result_classes_follow_the_pattern():
    classes = _result_classes()
    assert len(classes) >= 10, [c.__name__ for c in classes]
    for cls in classes:
        assert dataclasses.is_dataclass(cls), cls
        assert cls.__dataclass_params__.frozen, f"{cls.__name__} is not frozen"
        assert "__repr__" not in cls.__dict__, f"{cls.__name__}: declare it @dataclass(frozen=True, repr=False)"
        assert callable(getattr(cls, "summary", None)) and cls.summary is not Result.summary, cls
        names = {f.name for f in dataclasses.fields(cls)}
        assert "table" in names or isinstance(inspect.getattr_static(cls, "table", None), property), (
            f"{cls.__name__} has no main table named 'table'")


def test_result_dataclasses_all_derive_from_result():
    """Every frozen dataclass in a public module with to_frame() is a Result (no second result pattern)."""
    strays = []
    for info in pkgutil.walk_packages(prosperity.__path__, "prosperity."):
        mod = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(mod, inspect.isclass):
            if (obj.__module__ == mod.__name__ and dataclasses.is_dataclass(obj) and hasattr(obj, "to_frame")
                    and not issubclass(obj, Result)):
                strays.append(f"{mod.__name__}.{obj.__name__}")
    assert not strays, f"result dataclasses outside the Result pattern: {strays}"


def test_error_format_names_table_column_and_ids():
    df = pd.DataFrame({"piden": [1, 2, 3], "y": [1.0, float("nan"), 2.0]})
    with pytest.raises(_checks.InputError) as e:
        _checks.require_complete(df, ["y"], "panel", id_cols="piden")
    assert str(e.value) == ("table 'panel', column 'y': 1 missing or non-finite value(s); drop or impute them "
                            "explicitly (no row is dropped silently) (e.g. piden [2])")
    assert (e.value.table, e.value.column, e.value.ids) == ("panel", "y", [2])
    with pytest.raises(KeyError) as e:
        _checks.require_columns(df, ["piden", "firm"], "panel")
    assert str(e.value).startswith("table 'panel', column 'firm': no column(s) ['firm']")
    with pytest.raises(TypeError):
        _checks.require_frame([1, 2], "panel")
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(ValueError, match="appear more than once"):
        _checks.require_frame(dup, "panel")
    mixed = pd.DataFrame({"piden": [1, "1", 2]})
    with pytest.raises(TypeError, match=r"mixes value types \['int', 'str'\]"):
        _checks.require_one_type(mixed, "piden", "panel")


def test_errors_pickle_with_their_attributes():
    import pickle

    err = _checks.MissingColumnError("no column(s) ['x']", "jobs", "x", [1, 2], "piden")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is _checks.MissingColumnError and str(back) == str(err) and back.ids == [1, 2]
