"""The manual's settings table (docs/operating/settings.md) is the settings: every one
listed, each with its default.

`trackd/cli/settings.py` holds each default once; this keeps the documented table from drifting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from trackd.cli.settings import Settings
from trackd.server.rate_limit_policy import DEFAULT_LIMITS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "operating" / "settings.md"
HEADER = "| setting | flag | environment | default |"




def _rows() -> list[tuple[list[str], str]]:
    """(environment variables, default) of each row of the page's settings table: the
    lines from its header to the blank line that ends it."""
    text = PAGE.read_text().split(f"\n{HEADER}\n", 1)[1]
    table = text.split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines():
        assert line.startswith("|"), line
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2].startswith("`"):
            rows.append((re.findall(r"`([A-Z_…]+)`", cells[2]), cells[3]))
    return rows


def _env_name(field: str) -> str:
    return "MONGODB_URI" if field == "mongodb_uri" else f"TRACKD_{field.upper()}"


def _shown(default: Any) -> str:
    """A default as the page writes it."""
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    if isinstance(default, Path):
        return f"`./{default}`"
    return f"`{default}`"


def test_every_setting_is_in_the_table_and_nothing_else() -> None:
    listed = set()
    for names, _ in _rows():
        # `TRACKD_RATE_LIMIT_VIBEFOLLOW`, `…_FLYWHEEL`: the first name's stem, continued.
        stem = names[0].rsplit("_", 1)[0]
        listed |= {stem + name[1:] if name.startswith("…") else name for name in names}
    assert listed == {_env_name(name) for name in Settings.model_fields}


def test_each_default_is_the_settings_default() -> None:
    defaults = {_env_name(name): field.default for name, field in Settings.model_fields.items()}
    for names, shown in _rows():
        if len(names) == 1:
            assert shown in (_shown(defaults[names[0]]), "off" if defaults[names[0]] is None
                             else None), names[0]
    # The per-dialect rate limits: the server's defaults, in the row's order.
    rate_row = next(shown for names, shown in _rows() if len(names) > 1)
    dialects = ("vibefollow", "flywheel", "databuddy", "cueflow", "segment", "posthog",
                "amplitude", "mixpanel")
    expected = ", ".join(
        "off" if DEFAULT_LIMITS[d] is None
        else f"`{DEFAULT_LIMITS[d].requests}/{DEFAULT_LIMITS[d].seconds:g}`"  # type: ignore[union-attr]
        for d in dialects)
    assert rate_row == expected
