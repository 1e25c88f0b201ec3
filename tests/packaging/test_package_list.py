"""The wheel holds every package: pyproject's explicit list names each one on disk.

An editable install finds subpackages missing from the list anyway, so only a real
install (the Dockerfile's) would break; this catches it before that.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {name: ROOT / path for name, path in config["package-dir"].items()}
    on_disk = set()
    for top in ("trackd", "trackd_client", *dirs):
        base = dirs.get(top, ROOT / top)
        # trackd.v1 (generated) has no __init__.py: a folder of modules counts too.
        for module in base.rglob("*.py"):
            parts = module.parent.relative_to(base).parts
            on_disk.add(".".join((top, *parts)))
    on_disk.discard("trackd")  # a namespace package (trackd/ and proto/trackd)
    assert on_disk == set(config["packages"])
