"""Root pytest configuration: chapters (jupytext MyST-Markdown) are collected by tests/nbchapters.py."""
pytest_plugins = ["tests.nbchapters"]
