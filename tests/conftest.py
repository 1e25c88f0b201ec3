"""The suite's root: every shared fixture is in one plugin module, tests/fixtures.py."""

pytest_plugins = ["tests.fixtures"]
