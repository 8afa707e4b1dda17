"""IdempotencyStore (store/idempotency.py, scripts/idempotency.lua) against a real Redis: every Claim state, ownership,
the TTL, the size bounds, per-TPP scoping, races between tasks and between processes, and a crashed owner."""
from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gateway.store.idempotency import (
    Claim,
    IdempotencyStore,
    NotOwner,
    ResponseTooLarge,
    StoredResponse,
    idempotency_record,
)
from gateway.store.redis import async_client

ROOT = Path(__file__).resolve().parents[2]
CLIENT, KEY, DIGEST = "tpp-demo", "pay-1", "sha256-of-request-1"
DAY_MS = 86_400_000
ANSWER = StoredResponse(
    201,
    ((b"content-type", b"application/json; charset=utf-8"), (b"x-fapi-interaction-id", b"93bac548-d2de"),
     (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"x-binary", b"\x00\xff\r\n\t "), (b"x-empty", b"")),
    b'{"Data":{"DomesticPaymentId":"pmt-1","Status":"AcceptedSettlementInProcess"}}\x00\xff\xfe',
)


def _run(redis_url: str, body, **store_args):
    """asyncio.run(body(store, client)) with a fresh async client, always closed."""
    async def go():
        client = async_client(redis_url)
        try:
            return await body(IdempotencyStore(client, **store_args), client)
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_new_then_finish_then_replay_returns_the_same_bytes(redis_url):
    async def body(store, _):
        first = await store.claim(CLIENT, KEY, DIGEST)
        assert first.state == "new" and first.token and first.response is None
        await store.finish(CLIENT, KEY, first, ANSWER)
        return [await store.claim(CLIENT, KEY, DIGEST) for _ in range(2)]
    for replay in _run(redis_url, body):
        assert replay == Claim("replay", ANSWER)
        assert type(replay.response.body) is bytes and replay.response.body == ANSWER.body
        assert replay.response.headers == ANSWER.headers  # order, duplicates and binary values kept


def test_an_empty_answer_replays_and_finish_takes_the_token_alone(redis_url):
    empty = StoredResponse(204, (), b"")
    async def body(store, _):
        first = await store.claim(CLIENT, KEY, DIGEST)
        await store.finish(CLIENT, KEY, first.token, empty)
        return await store.claim(CLIENT, KEY, DIGEST)
    assert _run(redis_url, body) == Claim("replay", empty)


def test_the_same_key_with_another_request_is_a_mismatch_while_pending_and_after(redis_url):
    async def body(store, _):
        first = await store.claim(CLIENT, KEY, DIGEST)
        while_pending = await store.claim(CLIENT, KEY, "sha256-of-request-2")
        await store.finish(CLIENT, KEY, first, ANSWER)
        after = await store.claim(CLIENT, KEY, "sha256-of-request-2")
        return while_pending, after, await store.wait(CLIENT, KEY, "sha256-of-request-2", 5)
    assert _run(redis_url, body) == (Claim("mismatch"), Claim("mismatch"), Claim("mismatch"))


def test_a_retry_while_the_first_runs_is_pending_then_wait_gets_the_replay(redis_url):
    async def body(store, _):
        first = await store.claim(CLIENT, KEY, DIGEST)
        pending = await store.claim(CLIENT, KEY, DIGEST)

        async def owner():
            await asyncio.sleep(0.3)
            await store.finish(CLIENT, KEY, first, ANSWER)
        started = time.monotonic()
        waited, _ = await asyncio.gather(store.wait(CLIENT, KEY, DIGEST, timeout_s=5), owner())
        return pending, waited, time.monotonic() - started
    pending, waited, elapsed = _run(redis_url, body)
    assert pending == Claim("pending") and pending.token is None
    assert waited == Claim("replay", ANSWER)
    assert 0.3 <= elapsed < 1.5


def test_wait_is_bounded_by_its_timeout(redis_url):
    async def body(store, _):
        await store.claim(CLIENT, KEY, DIGEST)
        started = time.monotonic()
        claim = await store.wait(CLIENT, KEY, DIGEST, timeout_s=0.4)
        return claim, time.monotonic() - started, await store.wait(CLIENT, KEY, DIGEST, timeout_s=0)
    claim, elapsed, immediate = _run(redis_url, body)
    assert claim == Claim("pending") and immediate == Claim("pending")
    assert 0.4 <= elapsed < 1.0


def test_release_frees_the_key_and_a_waiter_becomes_the_owner(redis_url):
    async def body(store, _):
        first = await store.claim(CLIENT, KEY, DIGEST)
        await store.release(CLIENT, KEY, first)
        second = await store.claim(CLIENT, KEY, "another-request-now-allowed")
        await store.release(CLIENT, KEY, second.token)

        third = await store.claim(CLIENT, KEY, DIGEST)
        async def owner_gives_up():
            await asyncio.sleep(0.2)
            await store.release(CLIENT, KEY, third)
        waited, _ = await asyncio.gather(store.wait(CLIENT, KEY, DIGEST, timeout_s=5), owner_gives_up())
        after_waiter_took_it = await store.claim(CLIENT, KEY, DIGEST)
        await store.finish(CLIENT, KEY, waited, ANSWER)  # the waiter owns it now
        return second, waited, after_waiter_took_it, await store.claim(CLIENT, KEY, DIGEST)
    second, waited, taken, replay = _run(redis_url, body)
    assert second.state == "new" and waited.state == "new" and waited.token
    assert taken == Claim("pending") and replay == Claim("replay", ANSWER)


def test_only_the_owner_may_finish_or_release(redis_url, redis_client):
    async def body(store, _):
        first = await store.claim(CLIENT, KEY, DIGEST)
        pending = await store.claim(CLIENT, KEY, DIGEST)
        for intruder in ("0" * 32, pending, ""):
            with pytest.raises(NotOwner):
                await store.finish(CLIENT, KEY, intruder, ANSWER)
            with pytest.raises(NotOwner):
                await store.release(CLIENT, KEY, intruder)
        with pytest.raises(NotOwner):  # the owner's token names a record of this client and key only
            await store.finish("tpp-other", KEY, first, ANSWER)
        still = await store.claim(CLIENT, KEY, DIGEST)
        await store.finish(CLIENT, KEY, first, ANSWER)
        with pytest.raises(NotOwner):  # answered: no second answer, and no release of a kept answer
            await store.finish(CLIENT, KEY, first, StoredResponse(500, (), b"other"))
        with pytest.raises(NotOwner):
            await store.release(CLIENT, KEY, first)
        return still, await store.claim(CLIENT, KEY, DIGEST)
    still, replay = _run(redis_url, body)
    assert still == Claim("pending") and replay == Claim("replay", ANSWER)
    assert redis_client.keys("*") == [idempotency_record(CLIENT, KEY).encode()]


def test_the_same_key_of_another_client_is_independent(redis_url):
    async def body(store, _):
        ours = await store.claim(CLIENT, KEY, DIGEST)
        theirs = await store.claim("tpp-other", KEY, DIGEST)
        other_body = await store.claim("tpp-other-2", KEY, "a-different-request")
        await store.finish(CLIENT, KEY, ours, ANSWER)
        return theirs, other_body, await store.claim("tpp-other", KEY, DIGEST), await store.claim(CLIENT, KEY, DIGEST)
    theirs, other_body, theirs_again, ours_again = _run(redis_url, body)
    assert theirs.state == "new" and other_body.state == "new"
    assert theirs_again == Claim("pending") and ours_again == Claim("replay", ANSWER)
    assert idempotency_record(CLIENT, KEY) != idempotency_record("tpp-other", KEY)


def test_the_record_is_one_hash_tagged_key_kept_24_hours(redis_url, redis_client):
    name = f"obgw:{{{CLIENT}}}:idem:{hashlib.sha256(KEY.encode()).hexdigest()}"
    assert idempotency_record(CLIENT, KEY) == name

    async def body(store, client):
        first = await store.claim(CLIENT, KEY, DIGEST)
        after_claim = await client.pttl(name)
        await client.pexpire(name, 5_000)                  # the answer gets the full TTL again, from finish
        await store.finish(CLIENT, KEY, first, ANSWER)
        return after_claim, await client.pttl(name)
    after_claim, after_finish = _run(redis_url, body)
    assert DAY_MS - 5_000 < after_claim <= DAY_MS
    assert DAY_MS - 5_000 < after_finish <= DAY_MS
    assert redis_client.keys("*") == [name.encode()]
    assert redis_client.hget(name, "digest") == DIGEST.encode()
    assert not redis_client.hexists(name, "owner")


def test_any_key_string_is_a_safe_distinct_name(redis_url, redis_client):
    odd = ["k" * 10_000, "}{", "{tpp-other}", "a:b*?[x]", "päyment-€-😀", "\ud800lone surrogate", "", " ", "\n\x00"]

    async def body(store, _):
        return [await store.claim(CLIENT, key, DIGEST) for key in odd]
    assert [claim.state for claim in _run(redis_url, body)] == ["new"] * len(odd)
    names = sorted(name.decode() for name in redis_client.keys("*"))
    assert len(names) == len(odd)
    assert all(name.startswith("obgw:{tpp-demo}:idem:") and len(name) == len("obgw:{tpp-demo}:idem:") + 64
               for name in names)


def test_an_answer_over_the_bound_is_refused_before_any_write(redis_url):
    limit = 256 * 1024

    async def body(store, _):
        first = await store.claim(CLIENT, KEY, DIGEST)
        with pytest.raises(ResponseTooLarge):
            await store.finish(CLIENT, KEY, first, StoredResponse(200, (), b"x" * (limit + 1)))
        with pytest.raises(ResponseTooLarge):
            await store.finish(CLIENT, KEY, first, StoredResponse(200, ((b"x-big", b"v" * limit),), b""))
        with pytest.raises(TypeError):
            await store.finish(CLIENT, KEY, first, StoredResponse(200, (("str", "header"),), b""))
        still = await store.claim(CLIENT, KEY, DIGEST)
        biggest = StoredResponse(200, ANSWER.headers, bytes(range(256)) * (limit // 256))
        await store.finish(CLIENT, KEY, first, biggest)
        return still, await store.claim(CLIENT, KEY, DIGEST), biggest
    still, replay, biggest = _run(redis_url, body)
    assert still == Claim("pending")
    assert replay == Claim("replay", biggest) and len(replay.response.body) == limit


def test_twenty_concurrent_claims_from_tasks_make_exactly_one_owner(redis_url):
    async def body(store, _):
        return await asyncio.gather(*(store.claim(CLIENT, KEY, DIGEST) for _ in range(20)))
    states = [claim.state for claim in _run(redis_url, body)]
    assert states.count("new") == 1 and states.count("pending") == 19


_CLAIMER = textwrap.dedent("""
    import asyncio, json, sys, time
    from pathlib import Path
    from gateway.store.idempotency import IdempotencyStore
    from gateway.store.redis import async_client

    url, ready, go_file, tasks = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])

    async def go():
        client = async_client(url)
        try:
            store = IdempotencyStore(client)
            await asyncio.gather(*(client.ping() for _ in range(tasks)))  # connections open before the start
            ready.touch()
            deadline = time.monotonic() + 10
            while not go_file.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            claims = await asyncio.gather(*(store.claim("tpp-demo", "pay-1", "digest-1") for _ in range(tasks)))
            print(json.dumps([claim.state for claim in claims]))
        finally:
            await client.aclose()

    asyncio.run(go())
""")


def test_twenty_concurrent_claims_from_two_processes_make_exactly_one_owner(redis_url, tmp_path):
    go_file = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    children = [subprocess.Popen([sys.executable, "-c", _CLAIMER, redis_url, str(r), str(go_file), "10"], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in ready]
    try:
        deadline = time.monotonic() + 20
        while not all(r.exists() for r in ready) and time.monotonic() < deadline:
            assert all(child.poll() is None for child in children), [c.communicate(timeout=5) for c in children]
            time.sleep(0.01)
        go_file.touch()
        outputs = [child.communicate(timeout=20) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=5)
    assert [child.returncode for child in children] == [0, 0], outputs
    states = [state for out, _ in outputs for state in json.loads(out)]
    assert len(states) == 20 and states.count("new") == 1 and states.count("pending") == 19


def test_a_crashed_owner_keeps_the_key_pending_never_handing_it_over(redis_url, redis_client):
    """The safe default (module doc): past its lease a claim is "pending" (orphaned), never "new" again, so a retry
    cannot pay a second time; wait() gives up at once rather than polling to its timeout; the TTL still ends it."""
    async def body(store, client):
        crashed = await store.claim(CLIENT, KEY, DIGEST)           # this owner dies: it never finishes or releases
        within_lease = await store.claim(CLIENT, KEY, DIGEST)
        early_abandon = await store.abandon(CLIENT, KEY)
        await asyncio.sleep(0.45)
        after_lease = [await store.claim(CLIENT, KEY, DIGEST) for _ in range(3)]
        started = time.monotonic()
        waited = await store.wait(CLIENT, KEY, DIGEST, timeout_s=5)
        waited_for = time.monotonic() - started
        other = await store.claim(CLIENT, KEY, "another-request")
        return (crashed, within_lease, early_abandon, after_lease, waited, waited_for, other,
                await client.pttl(idempotency_record(CLIENT, KEY)))
    crashed, within, early_abandon, after, waited, waited_for, other, ttl = _run(redis_url, body, lease_seconds=0.3)
    assert crashed.state == "new"
    assert within == Claim("pending", orphaned=False) and early_abandon is False
    assert after == [Claim("pending", orphaned=True)] * 3
    assert waited == Claim("pending", orphaned=True) and waited_for < 0.5
    assert other == Claim("mismatch")
    assert DAY_MS - 5_000 < ttl <= DAY_MS                          # stuck at most for the key's 24 h


def test_a_slow_owner_past_its_lease_still_finishes(redis_url):
    async def body(store, _):
        slow = await store.claim(CLIENT, KEY, DIGEST)
        await asyncio.sleep(0.35)
        orphaned = await store.claim(CLIENT, KEY, DIGEST)
        await store.finish(CLIENT, KEY, slow, ANSWER)
        return orphaned, await store.claim(CLIENT, KEY, DIGEST)
    assert _run(redis_url, body, lease_seconds=0.2) == (Claim("pending", orphaned=True), Claim("replay", ANSWER))


def test_abandon_frees_only_an_orphan_after_its_lease(redis_url):
    async def body(store, _):
        crashed = await store.claim(CLIENT, KEY, DIGEST)
        answered = await store.claim(CLIENT, "pay-2", DIGEST)
        await store.finish(CLIENT, "pay-2", answered, ANSWER)
        await asyncio.sleep(0.3)
        freed = [await store.abandon(CLIENT, k) for k in (KEY, KEY, "pay-2", "never-claimed")]
        retaken = await store.claim(CLIENT, KEY, DIGEST)
        with pytest.raises(NotOwner):                               # the crashed owner, were it alive, lost the key
            await store.finish(CLIENT, KEY, crashed, ANSWER)
        return freed, retaken, await store.claim(CLIENT, "pay-2", DIGEST)
    freed, retaken, replay = _run(redis_url, body, lease_seconds=0.2)
    assert freed == [True, False, False, False]
    assert retaken.state == "new" and replay == Claim("replay", ANSWER)
