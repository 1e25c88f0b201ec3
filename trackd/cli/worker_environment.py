"""The environment a worker process of ``trackd serve --workers N`` starts with.

Workers read their settings from the environment alone: the supervisor resolves every
setting (flags included) into variables, names its database and its held ports, and puts
trackd's own package roots first on the worker's ``PYTHONPATH``.

May import: :mod:`trackd.cli.usage` (how settings are named) and :mod:`trackd.cli.settings`.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from trackd.cli.settings import Settings
from trackd.cli.usage import env_name


def worker_environment(settings: Settings, uri: str, grpc_port: int, http_port: int,
                       metrics_dir: Path, base: dict[str, str] | None = None,
                       ) -> dict[str, str]:
    """The supervisor's environment with every setting resolved for a worker.

    Flags become variables, the database is the one the supervisor runs, the ports the
    ones it holds; a worker runs alone (``workers`` 1) with the shared metrics directory.
    """
    env = dict(os.environ if base is None else base)
    env.pop("TRACKD_MONGODB_URI", None)  # MONGODB_URI, set below, is the one that counts
    values = {**settings.model_dump(), "mongodb_uri": uri, "grpc_port": grpc_port,
              "http_port": http_port, "workers": 1}
    for name, value in values.items():
        if value is None:
            env.pop(env_name(name), None)
        else:
            env[env_name(name)] = str(value).lower() if isinstance(value, bool) else str(value)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # The packages trackd runs from, first: the worker runs with -P (no current directory
    # on its path, so a ./cli of the user's cannot shadow trackd's).
    roots = package_roots()
    if env.get("PYTHONPATH"):
        roots.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(roots)
    return env


def package_roots() -> list[str]:
    """The directories holding trackd's packages (the checkout, and its ``proto``): the
    folders above this module's top-level package and above each part of the ``trackd``
    namespace package (said without naming the top level, which the ``trackd`` rename
    changes)."""
    import trackd
    top = importlib.import_module(__name__.partition(".")[0])
    paths = [*getattr(top, "__path__", ()), *trackd.__path__]
    return list(dict.fromkeys(str(Path(path).resolve().parent) for path in paths))
