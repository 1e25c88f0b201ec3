"""How trackd names its settings and its failures to the person running it.

Each setting's environment variable and flag (:func:`setting_names`), the one line an
invalid setting or a failed start is reported as (:class:`UsageError`,
:class:`StartupError`), and the settings part of ``trackd serve --help``.
"""

from __future__ import annotations

from pydantic import ValidationError

from trackd.cli.settings import Settings

# The command-line flag of each setting that has one (the rest are environment only).
FLAGS = {
    "mongodb_uri": "--mongodb-uri", "data_dir": "--data-dir", "database": "--database",
    "host": "--host", "grpc_port": "--grpc-port", "http_port": "--http-port",
    "log_level": "--log-level", "workers": "--workers",
}
SECRET_SETTINGS = ("mongodb_uri",)  # may hold a password: never echoed


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""

    exit_status = 2


class StartupError(UsageError):
    """trackd serve could not start (a port, the database); one line, exit status 1."""

    exit_status = 1


def env_name(setting: str) -> str:
    return "MONGODB_URI" if setting == "mongodb_uri" else f"TRACKD_{setting.upper()}"


def setting_names(setting: str) -> str:
    """``TRACKD_GRPC_PORT (--grpc-port)``: how a user sets it."""
    flag = FLAGS.get(setting)
    return f"{env_name(setting)} ({flag})" if flag else env_name(setting)


def invalid_setting(exc: ValidationError) -> str:
    """The first invalid setting, as one line naming its variable and flag."""
    error = exc.errors()[0]
    loc = str(error["loc"][0]).lower() if error["loc"] else ""
    setting = "mongodb_uri" if loc in ("mongodb_uri", "trackd_mongodb_uri") else \
        loc.removeprefix("trackd_")
    got = "" if setting in SECRET_SETTINGS or "input" not in error else \
        f" (got {str(error['input'])[:60]!r})"
    return f"invalid {setting_names(setting)}: {error['msg']}{got}"


def settings_help() -> str:
    """Every setting, for ``trackd serve --help`` (docs/operating/settings.md's table says
    more)."""
    lines = ["settings (a flag, else its environment variable, else the default; the table "
             "in docs/operating/settings.md has them too):"]
    for name, field in Settings.model_fields.items():
        default = "unset" if field.default is None else field.default
        lines.append(f"  {setting_names(name)}\n      {field.description} "
                     f"(default: {default})")
    return "\n".join(lines)
