"""prosperity: people, firms and places in England's pay and productivity gaps.

The helper package of the book *People, Firms and Places*. One module per concept, imports flowing one way
(data -> numerical core -> estimation -> decompositions -> outputs):

- ``geography``: the 296 English local authority districts (2023), their regions, ITL areas and ONS figures.
- ``synthetic``: a synthetic England of linked workers, firms and places with the true effects kept apart.
- ``link``: raw tables -> audited worker-year, firm-year and place-year panels (DuckDB).
- ``source``: a chapter's data source: the synthetic England or a real extract, behind one switch.
- ``network``: movers, connected sets and the leave-one-out connected set.
- ``akm``: two-way fixed-effect (AKM) estimation of worker and firm effects.
- ``variance``: plug-in, homoskedastic and KSS leave-out variance decompositions.
- ``groups``: the group estimators under limited mobility: BLM firm classes and finite mixtures, and CRE.
- ``places``: place effects and the people / firms / place decomposition of spatial gaps.
- ``productivity``: shift-share, Olley-Pakes and rent sharing.
- ``sdc``: statistical disclosure control of outputs (built on acro).
- ``policy``: counterfactual gaps and levers.
- ``brief``: one-page regional briefs, their numbers checked for disclosure.
- ``explorer``: the interactive district explorer (static HTML).
- ``plots``: the shared figure style and district maps.
- ``testing``: simulated two-way panels for tests, benchmarks and exercises.

Private modules below them (``_sparse``, ``_checks``, ``_results``, ``_io``) hold the numerical core, the input
checks, the result base and atomic output folders (see CONTRIBUTING.md).

Modules are imported on use (``from prosperity import akm``) so that ``import prosperity`` stays light.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("prosperity")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__", "show_versions"]


def show_versions():
    """The versions of Python, this package and the libraries it stands on, as a two-column DataFrame."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import pandas as pd

    names = [
        "prosperity", "numpy", "pandas", "scipy", "duckdb", "pyarrow", "pyfixest",
        "geopandas", "matplotlib", "seaborn", "statsmodels", "acro", "jupyter-book", "sphinx", "myst-nb",
    ]
    rows = [("python", platform.python_version()), ("platform", platform.platform())]
    for name in names:
        try:
            rows.append((name, version(name)))
        except PackageNotFoundError:
            rows.append((name, "not installed"))
    return pd.DataFrame(rows, columns=["package", "version"])
