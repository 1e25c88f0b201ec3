"""The ``workers`` setting: a number of processes, or ``auto`` for one per usable core."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.durability.harness import trackd_command as trackd
from trackd.cli.settings import available_cores, load


def test_auto_is_one_worker_per_core_this_process_may_use() -> None:
    assert available_cores() == len(os.sched_getaffinity(0))
    assert load({"workers": "auto"}).workers == available_cores()
    assert load({"workers": "AUTO"}).workers == available_cores()
    assert load({"workers": "3"}).workers == 3
    assert load({}).workers == 1


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_a_bad_worker_count_is_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        load({"workers": value})


def test_a_bad_worker_count_is_one_line_exit_2(tmp_path: Path) -> None:
    result = trackd("serve", "--workers", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "trackd: invalid TRACKD_WORKERS (--workers): Input should be greater than or equal "
        "to 1 (got '0')"]
    assert result.stdout == ""
