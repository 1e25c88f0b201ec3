"""``trackd websites create|list`` and ``trackd keys create --website``, run in-process
against the test database (``main()`` runs its own event loop, so these tests are sync)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from trackd.cli.logs import OWN_LOGGERS
from trackd.cli.main import main


@pytest.fixture(autouse=True)
def _logging_put_back() -> Iterator[None]:
    """``main()`` configures the process's logging as ``trackd`` does (root handlers and
    level, trackd's loggers at WARNING for an admin command). Put it back, or a later test
    in the same worker that reads trackd's INFO records through caplog sees none."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    own = {name: logging.getLogger(name).level for name in OWN_LOGGERS}
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    for name, saved in own.items():
        logging.getLogger(name).setLevel(saved)


@pytest.fixture
def database(mongodb_uri: str) -> Iterator[tuple[str, list[str]]]:
    """A fresh database name, and the flags that point the CLI at it."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name, ["--mongodb-uri", mongodb_uri, "--database", name]
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongodb_uri) as client:
        client.drop_database(name)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out.strip().splitlines(), captured.err


def test_websites_create_prints_the_id_last(
    database: tuple[str, list[str]], mongodb_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name, flags = database
    status, out, _ = run(capsys, "websites", "create", *flags, "--project", "acme",
                         "--origin", "https://Shop.Example.com/", "--origin",
                         "http://localhost:3000", "--no-server-side")
    assert status == 0
    website_id = out[-1]
    assert str(uuid.UUID(website_id)) == website_id
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongodb_uri, tz_aware=True) as client:
        doc = client[name]["websites"].find_one({"_id": website_id})
    assert doc is not None
    assert (doc["project_id"], doc["origins"], doc["allow_server_side"]) == (
        "acme", ["https://shop.example.com", "http://localhost:3000"], False)

    status, out, _ = run(capsys, "websites", "create", *flags, "--project", "acme")
    assert status == 0
    status, out, _ = run(capsys, "websites", "list", *flags, "--project", "acme")
    assert status == 0
    assert len(out) == 3
    assert website_id in out[1]


def test_websites_create_refuses_a_bad_origin(
    database: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, flags = database
    status, out, err = run(capsys, "websites", "create", *flags, "--project", "acme",
                           "--origin", "shop.example.com")
    assert status == 2
    assert out == []
    assert err.startswith("trackd: 'shop.example.com' is not an origin")


def test_keys_create_limited_to_websites(
    database: tuple[str, list[str]], mongodb_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name, flags = database
    _, out, _ = run(capsys, "websites", "create", *flags, "--project", "acme",
                    "--origin", "https://shop.example.com")
    website_id = out[-1]
    status, out, _ = run(capsys, "keys", "create", *flags, "--project", "acme",
                         "--scope", "track:events", "--website", website_id)
    assert status == 0
    assert out[-1].startswith("trk_")
    assert f"websites: {website_id}" in out
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongodb_uri) as client:
        keys: list[dict[str, Any]] = list(client[name]["api_keys"].find({}))
    assert [key["websites"] for key in keys] == [[website_id]]

    # A website of another project, or none at all, is refused.
    _, out, _ = run(capsys, "websites", "create", *flags, "--project", "other")
    for website in (out[-1], str(uuid.uuid4())):
        status, out, err = run(capsys, "keys", "create", *flags, "--project", "acme",
                               "--website", website)
        assert status == 2
        assert err == f"trackd: project acme has no website {website}\n"
