"""Checks of the documentation that `mkdocs build --strict` cannot make (README.md is
outside docs/)."""
