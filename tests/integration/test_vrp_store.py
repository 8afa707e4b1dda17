"""VrpUsage (store/vrp.py, scripts/vrp_usage.lua) against a real Redis: claim/settle/release arithmetic, concurrent
claims admitted exactly while they fit, refused and failed payments not counting, unknown outcomes counting until
resolved, period rollover and pruning, the sync store (the dashboard's reads, the operator's settle and release), and
Redis errors propagating."""
from __future__ import annotations

import asyncio
import random
from datetime import datetime, timezone

import pytest
import redis
from support.ports import free_port

from gateway.consents.control_parameters import PaymentLimits, limits_for_payment, parse_control_parameters
from gateway.store import names
from gateway.store.redis import async_client
from gateway.store.vrp import MAX_MINOR, HeldClaim, PeriodUsage, SyncVrpUsage, Verdict, VrpUsage

CONSENT = "vrp-consent-1"
MONTH, DAY = "Month/Calendar/2026-12-01", "Day/Calendar/2026-12-05"
HOLD = 60


def _run(redis_url: str, body, clients: int = 1, **store_args):
    """asyncio.run(body(store, *more stores)): each store on its own async client (a worker's pool), all closed."""
    async def go():
        opened = [async_client(redis_url) for _ in range(clients)]
        try:
            return await body(*(VrpUsage(client, **store_args) for client in opened))
        finally:
            for client in opened:
                await client.aclose()
    return asyncio.run(go())


def test_claim_settle_release_arithmetic(redis_url, redis_client):
    async def body(store: VrpUsage):
        steps = [await store.claim(CONSENT, "c1", 3000, [(MONTH, 10000), (DAY, 5000)], HOLD)]
        steps.append(await store.detail(CONSENT))
        steps.append(await store.settle(CONSENT, "c1"))
        steps.append(await store.detail(CONSENT))
        steps.append(await store.claim(CONSENT, "c2", 2000, [(MONTH, 10000), (DAY, 5000)], HOLD))
        steps.append(await store.usage(CONSENT))
        steps.append(await store.release(CONSENT, "c2"))
        steps.append(await store.detail(CONSENT))
        steps.append((await store.release(CONSENT, "c2"), await store.settle(CONSENT, "c2"),
                      await store.settle(CONSENT, "c1"), await store.release(CONSENT, "never")))
        steps.append(await store.claims(CONSENT))
        return steps
    (claimed, after_claim, settled, after_settle, claimed_2, usage, released, after_release, repeats,
     held) = _run(redis_url, body)
    assert claimed == Verdict(None) and claimed.admitted
    assert after_claim == {MONTH: PeriodUsage(0, 3000), DAY: PeriodUsage(0, 3000)}
    assert settled is True
    assert after_settle == {MONTH: PeriodUsage(3000, 0), DAY: PeriodUsage(3000, 0)}
    assert claimed_2.admitted and usage == {MONTH: 5000, DAY: 5000}
    assert released is True
    assert after_release == {MONTH: PeriodUsage(3000, 0), DAY: PeriodUsage(3000, 0)}
    assert repeats == (False, False, False, False)  # each claim resolved once; nothing changed after
    assert held == []
    assert SyncVrpUsage(redis_client).usage(CONSENT) == {MONTH: 3000, DAY: 3000}


def test_a_refusal_names_the_first_period_exceeded_and_changes_nothing(redis_url, redis_client):
    async def body(store: VrpUsage):
        assert (await store.claim(CONSENT, "c1", 4000, [(MONTH, 10000), (DAY, 5000)], HOLD)).admitted
        before = redis_client.hgetall(names.vrp_usage(CONSENT)), redis_client.hgetall(names.vrp_claims(CONSENT))
        refusals = [await store.claim(CONSENT, "c2", 2000, [(MONTH, 10000), (DAY, 5000)], HOLD),
                    await store.claim(CONSENT, "c3", 7000, [(MONTH, 10000), (DAY, 5000)], HOLD),
                    await store.claim(CONSENT, "c4", 7000, [(DAY, 5000), (MONTH, 10000)], HOLD)]
        after = redis_client.hgetall(names.vrp_usage(CONSENT)), redis_client.hgetall(names.vrp_claims(CONSENT))
        return refusals, before, after
    refusals, before, after = _run(redis_url, body)
    assert refusals == [Verdict("vrp.limit_exceeded", DAY, 5000, 4000),
                        Verdict("vrp.limit_exceeded", MONTH, 10000, 4000),  # the first in the order given
                        Verdict("vrp.limit_exceeded", DAY, 5000, 4000)]
    assert not any(each.admitted for each in refusals)
    assert before == after


def test_an_exact_fit_passes_and_one_minor_unit_more_does_not(redis_url):
    async def body(store: VrpUsage):
        return [await store.claim(CONSENT, "c1", 9999, [(MONTH, 10000)], HOLD),
                await store.claim(CONSENT, "c2", 2, [(MONTH, 10000)], HOLD),
                await store.claim(CONSENT, "c3", 1, [(MONTH, 10000)], HOLD),
                await store.claim(CONSENT, "c4", 1, [(MONTH, 10000)], HOLD)]
    assert [each.reason for each in _run(redis_url, body)] == [None, "vrp.limit_exceeded", None,
                                                               "vrp.limit_exceeded"]


def test_a_claim_id_is_used_once(redis_url):
    async def body(store: VrpUsage):
        return (await store.claim(CONSENT, "c1", 100, [(MONTH, 10000)], HOLD),
                await store.claim(CONSENT, "c1", 100, [(MONTH, 10000)], HOLD), await store.usage(CONSENT))
    first, again, usage = _run(redis_url, body)
    assert first.admitted and again == Verdict("vrp.claim_exists") and usage == {MONTH: 100}


def test_a_period_named_twice_counts_once_with_the_lower_limit(redis_url):
    async def body(store: VrpUsage):
        return (await store.claim(CONSENT, "c1", 600, [(MONTH, 1000), (MONTH, 500)], HOLD),
                await store.claim(CONSENT, "c2", 500, [(MONTH, 1000), (MONTH, 500)], HOLD), await store.usage(CONSENT))
    refused, admitted, usage = _run(redis_url, body)
    assert refused == Verdict("vrp.limit_exceeded", MONTH, 500, 0)
    assert admitted.admitted and usage == {MONTH: 500}


@pytest.mark.parametrize(("amount", "periods"), [
    (0, [(MONTH, 100)]), (-5, [(MONTH, 100)]), (MAX_MINOR + 1, [(MONTH, MAX_MINOR)]), (1, [(MONTH, -1)]),
    (1, [("", 100)]), (1, [(MONTH, MAX_MINOR + 1)]),
])
def test_nonsense_is_refused_before_redis(amount, periods):
    async def body(store: VrpUsage):
        with pytest.raises(ValueError):
            await store.claim(CONSENT, "c1", amount, periods, HOLD)
    _run(f"redis://127.0.0.1:{free_port()}/0", body)  # nobody listens there: never reached


def test_amounts_up_to_the_bound_stay_exact(redis_url):
    async def body(store: VrpUsage):
        return [await store.claim(CONSENT, "c1", MAX_MINOR - 1, [(MONTH, MAX_MINOR)], HOLD),
                await store.claim(CONSENT, "c2", 2, [(MONTH, MAX_MINOR)], HOLD),
                await store.claim(CONSENT, "c3", 1, [(MONTH, MAX_MINOR)], HOLD),
                await store.settle(CONSENT, "c1"), await store.settle(CONSENT, "c3"), await store.usage(CONSENT)]
    first, over, last, *_, usage = _run(redis_url, body)
    assert first.admitted and last.admitted
    assert over == Verdict("vrp.limit_exceeded", MONTH, MAX_MINOR, MAX_MINOR - 1)
    assert usage == {MONTH: MAX_MINOR}


# --- concurrency ---------------------------------------------------------------------------------------------------

def _mixes():
    rng = random.Random(20261205)
    yield "20 equal", [700] * 20, 10000
    yield "sum exactly the limit", [500] * 20, 10000
    yield "one big first", [9500] + [100] * 19, 10000
    yield "all too big but one", [6000] * 19 + [4000], 10000
    yield "limit below every amount", [300] * 20, 250
    for seed in range(4):
        yield f"random {seed}", [rng.randint(1, 2500) for _ in range(20)], rng.randint(5000, 20000)


@pytest.mark.parametrize(("amounts", "limit"), [pytest.param(a, b, id=name) for name, a, b in _mixes()])
def test_concurrent_claims_pass_exactly_while_they_fit(redis_url, amounts, limit):
    async def body(*stores: VrpUsage):
        for store in stores:  # every worker's connections open before the start, so the claims really race
            await asyncio.gather(*(store.usage(CONSENT) for _ in range(5)))
        verdicts = await asyncio.gather(*(
            stores[i % len(stores)].claim(CONSENT, f"c{i}", amount, [(MONTH, limit), (DAY, 10 ** 9)], HOLD)
            for i, amount in enumerate(amounts)))
        return verdicts, await stores[0].detail(CONSENT), await stores[0].claims(CONSENT)
    verdicts, detail, held = _run(redis_url, body, clients=4)
    admitted = [amount for amount, verdict in zip(amounts, verdicts) if verdict.admitted]
    refused = [(amount, verdict) for amount, verdict in zip(amounts, verdicts) if not verdict.admitted]
    total = sum(admitted)
    assert total <= limit
    for amount, verdict in refused:  # each refused one did not fit when it ran, nor would it now
        assert verdict.reason == "vrp.limit_exceeded" and verdict.period_id == MONTH
        assert verdict.counted_minor + amount > limit and verdict.counted_minor <= total
        assert total + amount > limit
    assert detail == ({MONTH: PeriodUsage(0, total), DAY: PeriodUsage(0, total)} if admitted else {})
    assert sorted(claim.amount_minor for claim in held) == sorted(admitted)
    if sum(amounts) <= limit:
        assert len(admitted) == len(amounts)


def test_concurrent_claims_then_settles_and_releases_leave_the_exact_count(redis_url):
    amounts = [random.Random(7).randint(100, 900) for _ in range(20)]
    async def body(*stores: VrpUsage):
        verdicts = await asyncio.gather(*(stores[i % 2].claim(CONSENT, f"c{i}", amount, [(MONTH, 6000)], HOLD)
                                          for i, amount in enumerate(amounts)))
        admitted = [i for i, verdict in enumerate(verdicts) if verdict.admitted]
        outcomes = await asyncio.gather(*(
            (stores[i % 2].settle if i % 3 else stores[i % 2].release)(CONSENT, f"c{i}") for i in admitted))
        return admitted, outcomes, await stores[0].detail(CONSENT)
    admitted, outcomes, detail = _run(redis_url, body, clients=2)
    assert all(outcomes)
    assert detail == {MONTH: PeriodUsage(sum(amounts[i] for i in admitted if i % 3), 0)}


# --- outcomes ------------------------------------------------------------------------------------------------------

def test_release_after_a_failure_frees_the_room(redis_url):
    async def body(store: VrpUsage):
        assert (await store.claim(CONSENT, "c1", 8000, [(MONTH, 10000)], HOLD)).admitted
        blocked = await store.claim(CONSENT, "c2", 5000, [(MONTH, 10000)], HOLD)
        await store.release(CONSENT, "c1")  # the bank refused c1
        return blocked, await store.claim(CONSENT, "c3", 5000, [(MONTH, 10000)], HOLD), await store.usage(CONSENT)
    blocked, after, usage = _run(redis_url, body)
    assert blocked.reason == "vrp.limit_exceeded" and after.admitted and usage == {MONTH: 5000}


def test_an_unknown_outcome_keeps_counting_past_its_hold_until_resolved(redis_url, redis_client):
    async def body(store: VrpUsage):
        assert (await store.claim(CONSENT, "unknown", 8000, [(MONTH, 10000)], hold_seconds=0.05)).admitted
        await asyncio.sleep(0.2)  # past the hold: overdue, still counted
        held, now = await store.claims(CONSENT), await store.now_ms()
        blocked = await store.claim(CONSENT, "c2", 5000, [(MONTH, 10000)], HOLD)
        ttls = redis_client.ttl(names.vrp_claims(CONSENT)), redis_client.ttl(names.vrp_usage(CONSENT))
        await store.settle(CONSENT, "unknown")  # reconciled: the bank had paid
        return held, now, blocked, ttls, await store.claim(CONSENT, "c3", 5000, [(MONTH, 10000)], HOLD)
    held, now, blocked, ttls, still_blocked = _run(redis_url, body)
    assert [claim.claim_id for claim in held] == ["unknown"]
    assert held[0].amount_minor == 8000 and held[0].periods == (MONTH,) and held[0].overdue(now)
    assert held[0].resolve_by_ms - held[0].claimed_ms == 50
    assert blocked == Verdict("vrp.limit_exceeded", MONTH, 10000, 8000)
    assert still_blocked == Verdict("vrp.limit_exceeded", MONTH, 10000, 8000)
    assert ttls == (-1, -1)  # nothing expires by itself
    sync = SyncVrpUsage(redis_client)
    assert sync.detail(CONSENT) == {MONTH: PeriodUsage(8000, 0)} and sync.claims(CONSENT) == []


def test_the_sync_store_settles_and_releases_a_held_claim_as_the_async_one_does(redis_url, redis_client):
    async def body(store: VrpUsage):
        for claim in ("paid", "unpaid"):
            assert (await store.claim(CONSENT, claim, 2000, [(MONTH, 10000), (DAY, 5000)], HOLD)).admitted
    _run(redis_url, body)
    sync = SyncVrpUsage(redis_client)
    assert [claim.claim_id for claim in sync.claims(CONSENT)] == ["paid", "unpaid"]
    assert sync.settle(CONSENT, "paid") is True and sync.release(CONSENT, "unpaid") is True
    assert sync.detail(CONSENT) == {MONTH: PeriodUsage(2000, 0), DAY: PeriodUsage(2000, 0)}
    assert sync.claims(CONSENT) == []
    before = redis_client.hgetall(names.vrp_usage(CONSENT))
    assert (sync.settle(CONSENT, "paid"), sync.release(CONSENT, "paid"), sync.settle(CONSENT, "never")) == (
        False, False, False)
    assert redis_client.hgetall(names.vrp_usage(CONSENT)) == before
    with pytest.raises(ValueError):
        sync.release(CONSENT, "")


def test_held_claims_are_listed_oldest_first_and_not_overdue_within_their_hold(redis_url, redis_client):
    async def body(store: VrpUsage):
        await store.claim(CONSENT, "b", 10, [(MONTH, 100), (DAY, 100)], HOLD)
        await asyncio.sleep(0.01)
        await store.claim(CONSENT, "a", 20, [(MONTH, 100)], HOLD)
        return await store.claims(CONSENT), await store.now_ms()
    held, now = _run(redis_url, body)
    assert [(claim.claim_id, claim.amount_minor, claim.periods) for claim in held] == [
        ("b", 10, (MONTH, DAY)), ("a", 20, (MONTH,))]
    assert not any(claim.overdue(now) for claim in held)
    assert all(isinstance(claim, HeldClaim) for claim in held)
    assert SyncVrpUsage(redis_client).claims(CONSENT) == held


# --- periods -------------------------------------------------------------------------------------------------------

def test_a_new_period_starts_from_zero_and_old_ones_are_pruned_after_a_while(redis_url, redis_client):
    november, december = "Month/Consent/2026-11-05", "Month/Consent/2026-12-05"
    async def body(store: VrpUsage, lazy: VrpUsage):
        assert (await store.claim(CONSENT, "nov-1", 9000, [(november, 10000)], HOLD)).admitted
        assert (await store.claim(CONSENT, "nov-2", 1000, [(november, 10000)], HOLD)).admitted
        await store.settle(CONSENT, "nov-1")  # nov-2's outcome stays unknown
        full = await store.claim(CONSENT, "nov-3", 1, [(november, 10000)], HOLD)
        rolled = await lazy.claim(CONSENT, "dec-1", 10000, [(december, 10000)], HOLD)  # December: from zero
        kept = await store.usage(CONSENT)       # named a moment ago: not pruned (a late clock may still count)
        await asyncio.sleep(0.3)
        pruned_by = await store.claim(CONSENT, "dec-2", 1, [(december, 20000)], HOLD)
        after = await store.detail(CONSENT)
        await store.settle(CONSENT, "nov-2")    # resolving a claim of a pruned period does not bring it back
        return full, rolled, kept, pruned_by, after, await store.detail(CONSENT), await store.claims(CONSENT)
    async def two(*_):
        client = async_client(redis_url)
        try:
            return await body(VrpUsage(client, prune_after_seconds=0.2), VrpUsage(client, prune_after_seconds=3600))
        finally:
            await client.aclose()
    full, rolled, kept, pruned_by, after, settled, held = asyncio.run(two())
    assert full == Verdict("vrp.limit_exceeded", november, 10000, 10000)
    assert rolled.admitted
    assert kept == {november: 10000, december: 10000}
    assert pruned_by.admitted
    assert after == {december: PeriodUsage(0, 10001)}
    assert settled == {december: PeriodUsage(0, 10001)}
    assert [claim.claim_id for claim in held] == ["dec-1", "dec-2"]
    assert set(redis_client.hkeys(names.vrp_usage(CONSENT))) == {b"p:" + december.encode(), b"s:" + december.encode()}


def test_a_refused_claim_prunes_nothing(redis_url):
    async def body(store: VrpUsage):
        await store.claim(CONSENT, "old", 10, [("Day/Calendar/2026-12-04", 100)], HOLD)
        await asyncio.sleep(0.1)
        refused = await store.claim(CONSENT, "new", 500, [(DAY, 100)], HOLD)
        return refused, await store.usage(CONSENT)
    refused, usage = _run(redis_url, body, prune_after_seconds=0.01)
    assert not refused.admitted and usage == {"Day/Calendar/2026-12-04": 10}


def test_with_the_limits_module_end_to_end(redis_url):
    params = parse_control_parameters({
        "ValidFromDateTime": "2026-12-01T00:00:00Z",
        "MaximumIndividualAmount": {"Amount": "40.00", "Currency": "GBP"},
        "PeriodicLimits": [{"PeriodType": "Day", "PeriodAlignment": "Calendar", "Amount": "50.00", "Currency": "GBP"},
                           {"PeriodType": "Month", "PeriodAlignment": "Consent", "Amount": "120.00",
                            "Currency": "GBP"}],
        "VRPType": ["UK.OBIE.VRPType.Sweeping"], "PSUAuthenticationMethods": ["UK.OBIE.SCA"],
    }, created="2026-11-30T12:00:00Z")

    async def pay(store: VrpUsage, amount: str, day: str, claim_id: str) -> str:
        decision = limits_for_payment(params, amount, "GBP", datetime.fromisoformat(f"{day}T10:00:00+00:00"))
        if not isinstance(decision, PaymentLimits):
            return decision.reason
        verdict = await store.claim(CONSENT, claim_id, decision.amount_minor, decision.periods, HOLD)
        if verdict.admitted:
            await store.settle(CONSENT, claim_id)
        return verdict.reason or "paid"

    async def body(store: VrpUsage):
        return [await pay(store, "40.00", "2026-12-05", "p1"), await pay(store, "10.01", "2026-12-05", "p2"),
                await pay(store, "10.00", "2026-12-05", "p3"), await pay(store, "40.01", "2026-12-06", "p4"),
                await pay(store, "40.00", "2026-12-06", "p5"), await pay(store, "30.01", "2026-12-07", "p6"),
                await pay(store, "30.00", "2026-12-07", "p7"), await pay(store, "40.00", "2027-01-01", "p8"),
                await store.usage(CONSENT)]
    *results, usage = _run(redis_url, body)
    assert results == ["paid", "vrp.limit_exceeded", "paid", "vrp.amount_over_maximum", "paid",
                       "vrp.limit_exceeded", "paid", "paid"]
    assert usage == {"Day/Calendar/2026-12-05": 5000, "Day/Calendar/2026-12-06": 4000,
                     "Day/Calendar/2026-12-07": 3000, "Month/Consent/2026-12-01": 12000,
                     "Day/Calendar/2027-01-01": 4000, "Month/Consent/2027-01-01": 4000}


# --- keys and failures ---------------------------------------------------------------------------------------------

def test_a_consents_keys_share_one_cluster_slot_and_consents_are_apart(redis_url):
    from redis.crc import key_slot
    assert key_slot(names.vrp_usage(CONSENT).encode()) == key_slot(names.vrp_claims(CONSENT).encode())
    assert names.vrp_usage(CONSENT) == "obgw:{vrp-consent-1}:vrp-usage"
    async def body(store: VrpUsage):
        assert (await store.claim("other", "c1", 10000, [(MONTH, 10000)], HOLD)).admitted
        return await store.claim(CONSENT, "c1", 10000, [(MONTH, 10000)], HOLD), await store.usage("other")
    verdict, other = _run(redis_url, body)
    assert verdict.admitted and other == {MONTH: 10000}


def test_redis_errors_propagate():
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async def body(store: VrpUsage):
        for call in (store.claim(CONSENT, "c1", 1, [(MONTH, 10)], HOLD), store.settle(CONSENT, "c1"),
                     store.release(CONSENT, "c1"), store.usage(CONSENT)):
            with pytest.raises(redis.ConnectionError):
                await call
    _run(dead, body)
    client = redis.Redis.from_url(dead, socket_connect_timeout=0.5)
    try:
        sync = SyncVrpUsage(client)
        for sync_call in (lambda: sync.usage(CONSENT), lambda: sync.release(CONSENT, "c1")):
            with pytest.raises(redis.ConnectionError):
                sync_call()
    finally:
        client.close()


def test_a_restarted_redis_reloads_the_script_and_keeps_the_count(server):
    async def body(store: VrpUsage):
        assert (await store.claim(CONSENT, "c1", 6000, [(MONTH, 10000)], HOLD)).admitted
        server.stop()
        with pytest.raises(redis.ConnectionError):
            await store.claim(CONSENT, "c2", 6000, [(MONTH, 10000)], HOLD)
        server.start()  # same data (append-only file), the script cache empty
        return await store.claim(CONSENT, "c3", 6000, [(MONTH, 10000)], HOLD), await store.usage(CONSENT)
    verdict, usage = _run(server.url, body)
    assert verdict == Verdict("vrp.limit_exceeded", MONTH, 10000, 6000) and usage == {MONTH: 6000}


def test_now_ms_is_redis_time(redis_url):
    async def body(store: VrpUsage):
        return await store.now_ms()
    now = _run(redis_url, body)
    assert abs(now / 1000 - datetime.now(timezone.utc).timestamp()) < 5
