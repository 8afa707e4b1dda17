"""The sandbox bank's feed of payment status changes (sandbox/status_changes.py), which the gateway reads: a change
when a payment is made, another when a scheduled one is executed, nothing else; numbered within the bank's epoch."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from gateway.sandbox.app import create_payments_app
from gateway.sandbox.data import build_bank

PISP = "/open-banking/v3.1/pisp"
CREDITOR = {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "08080021325698", "Name": "ACME Ltd"}
HEADERS = {"x-bank-customer-id": "alice", "x-bank-debtor-account-id": "acc-alice-current"}
ANCHOR = datetime(2026, 6, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = ANCHOR + timedelta(days=1, hours=9)

    def __call__(self) -> datetime:
        return self.now


def _call(app, method: str, url: str, **kwargs) -> httpx.Response:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bank.test") as client:
            return await client.request(method, url, **kwargs)
    return asyncio.run(call())


def _initiation(**more) -> dict:
    return {"InstructionIdentification": "i-1", "EndToEndIdentification": "e-1",
            "InstructedAmount": {"Amount": "5.00", "Currency": "GBP"}, "CreditorAccount": CREDITOR} | more


def _pay(app, path: str, consent_id: str, initiation: dict) -> dict:
    made = _call(app, "POST", f"{PISP}/{path}", headers=HEADERS,
                 json={"Data": {"ConsentId": consent_id, "Initiation": initiation}, "Risk": {}})
    assert made.status_code == 201, made.text
    return made.json()["Data"]


def _changes(app, after: int = 0) -> dict:
    answer = _call(app, "GET", "/internal/payment-status-changes", params={"after": after})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_payment_made_and_a_scheduled_one_executed_are_changes_in_order():
    clock = Clock()
    bank = build_bank(7, ANCHOR, clock=clock)
    app = create_payments_app(bank)
    paid = _pay(app, "domestic-payments", "pdc-1", _initiation())
    when = clock.now + timedelta(hours=2)
    scheduled = _pay(app, "domestic-scheduled-payments", "pdsc-1",
                     _initiation(RequestedExecutionDateTime=when.isoformat()))
    feed = _changes(app)
    assert [(c["seq"], c["payment_id"], c["type"], c["consent_id"], c["status"]) for c in feed["changes"]] == [
        (1, paid["DomesticPaymentId"], "domestic-payment", "pdc-1", "AcceptedSettlementCompleted"),
        (2, scheduled["DomesticScheduledPaymentId"], "domestic-scheduled-payment", "pdsc-1", "InitiationPending")]
    assert _changes(app, after=2)["changes"] == []

    clock.now = when + timedelta(minutes=1)  # the read itself runs what has fallen due
    [executed] = _changes(app, after=2)["changes"]
    assert (executed["seq"], executed["status"], executed["at"]) == (3, "InitiationCompleted", when.isoformat())
    assert set(executed) == {"seq", "payment_id", "type", "consent_id", "status", "at"}  # nothing of the money
    assert _changes(app)["epoch"] == feed["epoch"]
    assert build_bank(7, ANCHOR).orders.changes.epoch != feed["epoch"]  # another bank process, another epoch


def test_a_repeated_payment_request_is_not_another_change():
    bank = build_bank(7, ANCHOR, clock=Clock())
    app = create_payments_app(bank)
    initiation = _initiation()
    _pay(app, "domestic-payments", "pdc-1", initiation)
    _pay(app, "domestic-payments", "pdc-1", initiation)  # the same request answers the order it made
    assert len(_changes(app)["changes"]) == 1


def test_orders_replayed_from_the_state_file_are_not_changes_again(tmp_path):
    state = tmp_path / "ledger.jsonl"
    first = create_payments_app(build_bank(7, ANCHOR, clock=Clock(), state_file=str(state)))
    _pay(first, "domestic-payments", "pdc-1", _initiation())
    again = create_payments_app(build_bank(7, ANCHOR, clock=Clock(), state_file=str(state)))
    assert _changes(again)["changes"] == []
