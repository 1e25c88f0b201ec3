"""The admin commands: ``trackd keys create|revoke|list`` and ``trackd websites create|list``.

Each takes the store (:func:`trackd.cli.database.with_store` opens it) and prints its result;
a problem the user can fix is a :class:`trackd.cli.usage.UsageError`.
"""

from __future__ import annotations

import uuid

from trackd.cli.usage import UsageError
from trackd.server.auth import issue_key
from trackd.server.websites import canonical_origin
from trackd.storage import Store


async def keys_create(store: Store, project: str, scopes: list[str],
                      websites: list[str] | None = None) -> int:
    websites = websites or []
    found = await store.websites.get_many(websites)
    for website_id in websites:
        if website_id not in found or found[website_id].project_id != project:
            raise UsageError(f"project {project} has no website {website_id}")
    try:
        issued = await issue_key(store.keys, project, scopes, websites)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    record = issued.record
    print(f"key id:  {record.key_id}\nproject: {record.project_id}\n"
          f"scopes:  {' '.join(record.scopes)}\n"
          + (f"websites: {' '.join(record.websites)}\n" if record.websites else "")
          + "secret (shown only this once; trackd keeps just its hash):")
    print(issued.secret)
    return 0


async def keys_revoke(store: Store, key_id: str) -> int:
    if not await store.keys.revoke(key_id):
        raise UsageError(f"no active key with id {key_id}")
    print(f"revoked {key_id}")
    return 0


async def keys_list(store: Store, project: str | None) -> int:
    print(f"{'KEY ID':<22} {'PROJECT':<20} {'SCOPES':<24} {'CREATED':<20} STATUS")
    for record in await store.keys.list(project):
        status = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "active"
        print(f"{record.key_id:<22} {record.project_id:<20} {' '.join(record.scopes):<24} "
              f"{record.created_at:%Y-%m-%d %H:%M:%S}  {status}")
    return 0


async def websites_create(store: Store, project: str, origins: list[str],
                          allow_server_side: bool) -> int:
    if not project:
        raise UsageError("a project name is required")
    try:
        canonical = list(dict.fromkeys(canonical_origin(origin) for origin in origins))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    record = await store.websites.insert(str(uuid.uuid4()), project, canonical,
                                         allow_server_side=allow_server_side)
    print(f"project: {record.project_id}\norigins: {' '.join(record.origins) or '(none)'}\n"
          f"requests without an Origin: "
          f"{'accepted' if record.allow_server_side else 'refused'}\nwebsite id:")
    print(record.website_id)
    return 0


async def websites_list(store: Store, project: str | None) -> int:
    print(f"{'WEBSITE ID':<36}  {'PROJECT':<20} {'SERVER-SIDE':<11}  ORIGINS")
    for record in await store.websites.list(project):
        print(f"{record.website_id:<36}  {record.project_id:<20} "
              f"{'yes' if record.allow_server_side else 'no':<11}  {' '.join(record.origins)}")
    return 0
