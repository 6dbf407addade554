"""Root pytest configuration: chapters (jupytext MyST-Markdown) are collected by prosperity.testing."""
pytest_plugins = ["prosperity.testing"]
