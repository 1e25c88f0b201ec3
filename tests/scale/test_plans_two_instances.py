"""Tracking plans across two `trackd serve` instances on one database, managed with the
CLI as an operator would: a plan set by `trackd plans set` is applied by the other
instance within 1 s (its cached plan is dropped by the tracking_plans change stream),
and the quarantine is listed, released twice (stored once) and dropped."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.durability.harness import PROJECT, Database, StartTrackd, Trackd
from tests.durability.harness import trackd_command as run_trackd
from tests.scale.test_two_instances import db_client, headers, session, trackd_command, two
from tests.server.plan_helpers import plan_document

BAD_EVENT = {"external_user_id": "usr_1", "name": "user_signed_up",
             "properties": {"plan": "free"}}


def plan_file(root: Path, name: str, document: dict[str, Any]) -> str:
    path = root / name
    path.write_text(yaml.safe_dump(document))
    return str(path)


async def post(http: aiohttp.ClientSession, instance: Trackd, key: str,
               body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(f"{instance.url}/api/v1/events", json=body,
                         headers=headers(key)) as response:
        return response.status, await response.json()


async def test_a_plan_set_with_the_cli_applies_on_the_other_instance_within_1_s(
    database: Database, database_key: str, start_trackd: StartTrackd
) -> None:
    a, b = await two(start_trackd)  # the default 5 s plan cache
    async with session() as http:
        for instance in (a, b):  # "no plan" cached on both
            assert (await post(http, instance, database_key, BAD_EVENT))[0] == 202
        out = await trackd_command(database, "plans", "set", "--project", PROJECT, plan_file(
            database.root, "plan.yaml", plan_document(enforcement="block")))
        assert out.splitlines()[-1] == "1"
        deadline = time.monotonic() + 1.0
        refused: dict[str, int] = {}
        while len(refused) < 2 and time.monotonic() < deadline:
            for name, instance in (("a", a), ("b", b)):
                if name not in refused:
                    status, _ = await post(http, instance, database_key, BAD_EVENT)
                    if status == 422:
                        refused[name] = status
    assert sorted(refused) == ["a", "b"], f"a new plan not applied within 1 s: {refused}"


async def test_quarantine_list_release_twice_and_drop_with_the_cli(
    database: Database, database_key: str, start_trackd: StartTrackd
) -> None:
    a = await start_trackd()
    await trackd_command(database, "plans", "set", "--project", PROJECT, plan_file(
        database.root, "block.yaml", plan_document(enforcement="block")))
    async with session() as http:
        for i in range(3):
            status, body = await post(http, a, database_key, {**BAD_EVENT, "event_id": f"q-{i}"})
            assert (status, body) == (422, {"errors": [{
                "code": "tracking_plan_violation", "field": "properties.plan",
                "message": 'properties.plan is invalid: "free" is not one of "trial", "pro" '
                           'or "enterprise"'}]})
        status, _ = await post(http, a, database_key,
                               {**BAD_EVENT, "name": "other", "event_id": "o-1",
                                "properties": {}})
        assert status == 202  # unplanned events are flagged, never refused
    listing = await trackd_command(database, "plans", "quarantine", "list", "--project",
                                   PROJECT)
    lines = listing.splitlines()
    assert lines[0].split()[:3] == ["EVENT", "ID", "EVENT"]
    assert [line.split()[0] for line in lines[1:4]] == ["q-0", "q-1", "q-2"]
    assert all('properties.plan is invalid: "free"' in line for line in lines[1:4])
    assert lines[4] == "3 quarantined"
    report = (await trackd_command(database, "plans", "violations", "--project", PROJECT,
                                   "--since", "1h")).splitlines()
    assert [line.split()[:3] for line in report[1:]] == [
        ["other", "unplanned_event", "1"], ["user_signed_up", "invalid_value", "3"]]
    # A version that allows "free": released once, stored once.
    document = plan_document(enforcement="block")
    document["events"]["user_signed_up"]["properties"]["properties"]["plan"]["enum"] \
        .append("free")
    await trackd_command(database, "plans", "set", "--project", PROJECT,
                         plan_file(database.root, "v2.yaml", document))
    first = await trackd_command(database, "plans", "quarantine", "release", "--project",
                                 PROJECT)
    second = await trackd_command(database, "plans", "quarantine", "release", "--project",
                                  PROJECT)
    assert first.strip() == ("released: 3 stored, 0 already stored, 0 still quarantined "
                             "(plan version 2)")
    assert second.strip() == ("released: 0 stored, 0 already stored, 0 still quarantined "
                              "(plan version 2)")
    events = db_client(database)["events"]
    assert sorted(doc["event_id"] for doc in events.find(
        {"project_id": PROJECT, "event_id": {"$regex": "^q-"}})) == ["q-0", "q-1", "q-2"]
    assert (await trackd_command(database, "plans", "quarantine", "drop", "--project",
                                 PROJECT)).strip() == "dropped: 0"


async def test_an_invalid_plan_file_is_one_error_and_changes_nothing(
    database: Database,
) -> None:
    await trackd_command(database, "plans", "set", "--project", PROJECT, plan_file(
        database.root, "good.yaml", plan_document()))
    bad = plan_document()
    bad["events"]["user_signed_up"]["properties"]["type"] = "objectx"
    path = plan_file(database.root, "bad.yaml", bad)
    result = run_trackd("plans", "set", "--project", PROJECT, path, "--mongodb-uri",
                        database.uri, cwd=database.root)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"trackd: {path}: events.user_signed_up.properties.type: is not valid JSON Schema: "
        "\"objectx\" is not valid under any of the schemas listed in the 'anyOf' keyword"]
    assert db_client(database)["tracking_plans"].count_documents({}) == 1
    shown = await trackd_command(database, "plans", "show", "--project", PROJECT)
    assert shown.splitlines()[0].startswith(f"# project {PROJECT}, version 1, set ")
    assert yaml.safe_load(shown) == plan_document()
    # JSON is YAML: a JSON plan file is read the same.
    json_file = database.root / "plan.json"
    json_file.write_text(json.dumps(plan_document(enforcement="block")))
    out = await trackd_command(database, "plans", "set", "--project", PROJECT, str(json_file))
    assert out.splitlines()[-1] == "2"
    first = await trackd_command(database, "plans", "show", "--project", PROJECT,
                                 "--version", "1")
    assert yaml.safe_load(first)["enforcement"] == "observe"
