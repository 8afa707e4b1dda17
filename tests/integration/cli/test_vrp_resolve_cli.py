"""`obgw consents vrp-held|vrp-resolve` against a real Redis: the claims of VRP payments whose outcome is unknown are
listed, and the operator settles one (the bank paid: it keeps counting) or releases it (the bank did not: its room is
given back), audited; an unknown claim is refused with exit 2 and nothing changes."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from support.payment_data import vrp_control

from gateway.cli import main
from gateway.consents.model import Consent, Kind, Status, expires_ms, to_record
from gateway.store.consents import ConsentStore
from gateway.store.redis import async_client
from gateway.store.vrp import PeriodUsage, SyncVrpUsage, Verdict, VrpUsage

CONSENT = "vrp-cli-1"
MONTH = "Month/Consent/2026-12-05"
LIMIT = 10000  # £100.00 a month (vrp_control's default)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def where(redis_url, redis_client) -> tuple[str, str]:
    """The CLI's Redis, holding tpp-demo's authorised VRP consent CONSENT (limits in GBP)."""
    consent = Consent(consent_id=CONSENT, client_id="tpp-demo", kind=Kind.DOMESTIC_VRP, status=Status.AUTHORISED,
                      created="2026-12-05T10:00:00+00:00", status_updated="2026-12-05T10:01:00+00:00",
                      permissions=(), expires=None, transaction_from=None, transaction_to=None, customer_id=None,
                      accounts=("acc-alice-current",), terms={"ControlParameters": vrp_control()})
    store = ConsentStore(redis_client)
    store.create(to_record(consent), expires_ms(consent), lapse_seconds=3600)
    store.keep("tpp-demo", CONSENT)
    return "--redis-url", redis_url


def _claim(redis_url: str, claim_id: str, amount_minor: int, hold_seconds: float = 60,
           consent_id: str = CONSENT) -> Verdict:
    """A VRP payment's claim as the gateway takes it (VrpUsage on a worker's async client)."""
    async def go() -> Verdict:
        client = async_client(redis_url)
        try:
            return await VrpUsage(client).claim(consent_id, claim_id, amount_minor, [(MONTH, LIMIT)], hold_seconds)
        finally:
            await client.aclose()
    return asyncio.run(go())


def _operator_records(capsys, redis_url: str) -> list[dict]:
    code, out, err = run(capsys, "audit", "search", "--json", "--consent", CONSENT, "--redis-url", redis_url)
    assert code == 0, err
    return [r for r in map(json.loads, out.splitlines()) if r["method"] == "CLI"]


def test_held_claims_are_listed_oldest_first_with_amount_time_and_overdue(capsys, redis_url, where):
    assert run(capsys, "consents", "vrp-held", CONSENT, *where) == (0, "", "")  # none held: nothing
    assert _claim(redis_url, "late", 1250, hold_seconds=0).admitted
    assert _claim(redis_url, "fresh", 500).admitted
    code, out, err = run(capsys, "consents", "vrp-held", CONSENT, *where)
    assert code == 0, err
    rows = [line.split("\t") for line in out.splitlines()]
    assert [(row[0], row[1], row[3]) for row in rows] == [("late", "12.50 GBP", "overdue"),
                                                          ("fresh", "5.00 GBP", "held")]
    for row in rows:
        claimed = datetime.fromisoformat(row[2])
        assert claimed.utcoffset() == timedelta(0)
        assert abs(datetime.now(timezone.utc) - claimed) < timedelta(seconds=30)
    # Nothing is held for another consent (or an id nobody used); a claim whose consent is gone shows minor units.
    assert run(capsys, "consents", "vrp-held", "vrp-other", *where) == (0, "", "")
    assert _claim(redis_url, "orphan", 700, consent_id="vrp-gone").admitted
    code, out, _ = run(capsys, "consents", "vrp-held", "vrp-gone", *where)
    assert code == 0 and out.split("\t")[:2] == ["orphan", "700 (minor units)"]


@pytest.mark.parametrize("flag, said, usage, fits", [
    ("--paid", "settled c1: 30.00 GBP keeps counting", PeriodUsage(3000, 0), LIMIT - 3000),
    ("--not-paid", "released c1: 30.00 GBP given back", PeriodUsage(0, 0), LIMIT),
])
def test_a_resolved_claim_is_no_longer_held_and_counts_as_the_bank_said(capsys, redis_url, redis_client, where,
                                                                       flag, said, usage, fits):
    assert _claim(redis_url, "c1", 3000).admitted
    assert not _claim(redis_url, "c2", LIMIT - 2999).admitted  # the unknown outcome counts until resolved
    code, out, err = run(capsys, "consents", "vrp-resolve", CONSENT, "c1", flag, *where)
    assert (code, out.strip()) == (0, said), err
    assert run(capsys, "consents", "vrp-held", CONSENT, *where) == (0, "", "")
    assert SyncVrpUsage(redis_client).detail(CONSENT) == {MONTH: usage}
    assert not _claim(redis_url, "c3", fits + 1).admitted
    assert _claim(redis_url, "c4", fits).admitted
    [record] = _operator_records(capsys, redis_url)
    outcome = flag.removeprefix("--")
    assert (record["route"], record["reason"], record["client_id"], record["consent_id"]) == (
        f"obgw consents vrp-resolve {outcome}", f"operator.consents_vrp_resolve_{outcome.replace('-', '_')}",
        "tpp-demo", CONSENT)


def test_an_unknown_claim_is_refused_naming_it_and_nothing_changes(capsys, redis_url, redis_client, where):
    assert _claim(redis_url, "c1", 3000).admitted
    assert run(capsys, "consents", "vrp-resolve", CONSENT, "c1", "--paid", *where)[0] == 0

    def state() -> dict:
        return {k: redis_client.dump(k) for k in redis_client.keys("obgw:*") if b"audit" not in k}
    before, audited = state(), _operator_records(capsys, redis_url)
    for claim, flag in (("c1", "--not-paid"), ("c1", "--paid"), ("never", "--not-paid")):  # resolved already, never
        code, out, err = run(capsys, "consents", "vrp-resolve", CONSENT, claim, flag, *where)
        assert (code, out) == (2, ""), err
        assert err.startswith(f"obgw: no held claim {claim} on consent {CONSENT}") and "nothing changed" in err
    assert state() == before
    assert _operator_records(capsys, redis_url) == audited  # a refused command leaves no record


@pytest.mark.parametrize("flags", [(), ("--paid", "--not-paid")])
def test_resolve_takes_exactly_one_of_paid_and_not_paid(capsys, where, flags):
    with pytest.raises(SystemExit) as exit_:
        main(["consents", "vrp-resolve", CONSENT, "c1", *flags, *where])
    assert exit_.value.code == 2 and "--paid" in capsys.readouterr().err
