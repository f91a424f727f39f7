"""``lookupUsers`` and its cache on every database (issue 16, items 2 and 6): ids checked before
anything is cached or sent, not-found answers bounded per caller, a refused caller's rows dropped
and no longer served, one length limit (128) for account ids, 400 ``bad_input`` beyond it."""

from __future__ import annotations

import random
from typing import Any

import sqlalchemy as sa

from simulator import Platform
from tests.conftest import Backend


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def cached_rows(backend: Backend) -> int:
    """Rows the lookup cache holds, in whichever of its tables this schema has (once what the
    app keeps back is written)."""
    svc = backend.client.application.extensions["access_desk"]
    assert svc.lookups.flush()
    engine = svc.store.engine
    tables = {"lookup_cache", "lookup_misses"} & set(sa.inspect(engine).get_table_names())
    with engine.connect() as conn:
        return sum(
            int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one())
            for t in tables
        )


def sent_ids(platform: Platform) -> list[str]:
    return [
        i for r in platform.requests if r.endpoint == "users-bulk" for i in r.body["accountIds"]
    ]


def test_random_ids_do_not_amplify_the_caches_writes(
    backend_on_each_db: Backend, platform: Platform
) -> None:
    """One ordinary user looking up 10,000 random ids per call wrote a row per id (180,000 rows,
    517 MB in 18 calls). Not-found ids are now kept at most 1,000 per caller."""
    backend = backend_on_each_db
    user = platform.installation.site.user_ids[1]
    rng = random.Random("amplify")
    for _ in range(3):
        ids = [f"{rng.getrandbits(96):024x}" for _ in range(10_000)]
        body = ok(backend.call("lookupUsers", {"accountIds": ids}, account=user))
        assert len(body["notFound"]) == 10_000 and body["failed"] == []
    rows = cached_rows(backend)
    assert rows <= 1_000, f"{rows} rows cached for one caller's 30,000 random ids"
    again = ok(backend.call("lookupUsers", {"accountIds": ids[:5]}, account=user))
    assert again["notFound"] == ids[:5]


def test_an_id_without_an_account_ids_form_is_neither_sent_nor_cached(
    backend_on_each_db: Backend, platform: Platform
) -> None:
    backend = backend_on_each_db
    site = platform.installation.site
    real = site.user_ids[:2]
    liberal = [
        "557058:5aedf933-2312-40bc-b328-0c21314167f0",
        "5b10a2844c20165700ede21g",  # Atlassian's own documentation example (not hex)
        "qm:8d6e1e27-8c8a-4b8e-9a5e-2f2a7c1e1a11:2c4c3f8d-2d4a-4f1b-9b7a-3c3b0c7a9f12",
        "x" * 128,
    ]
    malformed = ["not an id", "someone@example.com", "../../etc", "id/with/slashes", "ünï"]
    body = ok(backend.call("lookupUsers", {"accountIds": [*real, *liberal, *malformed]}))
    assert [u["accountId"] for u in body["users"]] == real
    assert body["notFound"] == [*liberal, *malformed] and body["failed"] == []
    assert sent_ids(platform) == [*real, *liberal]  # the malformed ones never went upstream
    before = len(platform.requests)
    again = ok(backend.call("lookupUsers", {"accountIds": malformed}))
    assert again["notFound"] == malformed and len(platform.requests) == before
    assert cached_rows(backend) == len(real) + len(liberal)


def test_a_refused_caller_is_no_longer_served_from_the_cache(
    backend_on_each_db: Backend, platform: Platform
) -> None:
    """A user made an external collaborator kept seeing cached profiles (with emails) while
    uncached ids were refused. Now the refusal drops the caller's rows and fails them too."""
    backend = backend_on_each_db
    site = platform.installation.site
    user, seen, unseen = site.user_ids[2], site.user_ids[5:9], site.user_ids[9]
    first = ok(backend.call("lookupUsers", {"accountIds": seen}, account=user))
    assert len(first["users"]) == 4 and any(u["email"] for u in first["users"])
    other = ok(backend.call("lookupUsers", {"accountIds": seen}, account=site.admin_id))
    site.external_ids.append(user)  # Confluence now refuses every profile lookup of theirs
    refused = ok(backend.call("lookupUsers", {"accountIds": [*seen, unseen]}, account=user))
    assert refused["users"] == [] and refused["notFound"] == []
    assert [f["accountId"] for f in refused["failed"]] == [*seen, unseen]
    assert {f["error"] for f in refused["failed"]} == {"not_permitted"}
    assert cached_rows(backend) == len(other["users"])  # only the admin's rows are left
    again = ok(backend.call("lookupUsers", {"accountIds": seen}, account=user))
    assert again["users"] == [] and len(again["failed"]) == 4  # asked again, refused again
    admin = ok(backend.call("lookupUsers", {"accountIds": seen}, account=site.admin_id))
    assert admin["users"] == other["users"]  # another caller's cache stands


def test_an_account_id_over_128_characters_is_bad_input_on_every_database(
    backend_on_each_db: Backend, platform: Platform
) -> None:
    """An id of 129 to 320 characters answered 500 on PostgreSQL (the cache column holds 128) and
    lost the valid ids of the same call. One limit now: 400 before anything is sent or stored."""
    backend = backend_on_each_db
    valid = platform.installation.site.user_ids[:3]
    ids = [valid[0], "a" * 129, valid[1], "b" * 320, valid[2]]
    refused = backend.call("lookupUsers", {"accountIds": ids})
    assert refused.status_code == 400, refused.get_data(as_text=True)
    body = refused.get_json()
    assert body["error"] == "bad_input"
    assert body["details"] == {
        "accountIds[1]": "longer than 128 characters",
        "accountIds[3]": "longer than 128 characters",
    }
    assert sent_ids(platform) == [] and cached_rows(backend) == 0  # nothing spent, nothing kept
    answered = ok(backend.call("lookupUsers", {"accountIds": [*valid, "c" * 128]}))
    assert [u["accountId"] for u in answered["users"]] == valid
    assert answered["notFound"] == ["c" * 128]
