"""Data-flow tracing (issue 20 part 4, CONTRACT §14): `obgw audit trace FILE` names the TPPs and consents that received
each record found in a file, matched by the record's identity (altered content still matches), and none for a record
the gateway never delivered; the audit log holds only keyed fingerprints, never the identities themselves."""
from __future__ import annotations

import json

import pytest
from support.tpp import ACCOUNTS, Tpp

pytestmark = pytest.mark.e2e

TRANSACTIONS = ACCOUNTS + "/{}/transactions"
CURRENT = "acc-alice-current"


@pytest.fixture(scope="module")
def deliveries(gateway, pki):
    """tpp-demo reads the current account's transactions in both directions; tpp-other, credits only. Returns what
    each received (the answers' bodies) and their consent ids."""
    got = {}
    for name, permissions in (("tpp-demo", ["ReadAccountsDetail", "ReadTransactionsDetail",
                                            "ReadTransactionsCredits", "ReadTransactionsDebits"]),
                              ("tpp-other", ["ReadAccountsBasic", "ReadTransactionsBasic",
                                             "ReadTransactionsCredits"])):
        tpp = Tpp(gateway.base, pki, name)
        try:
            token = tpp.consent_token(permissions, accounts=[CURRENT])
            answer = tpp.get(TRANSACTIONS.format(CURRENT), token)
            assert answer.status_code == 200, answer.text
            accounts = tpp.get(ACCOUNTS, token)
            assert accounts.status_code == 200, accounts.text
        finally:
            tpp.close()
        got[name] = {"consent_id": token["consent_id"], "transactions": answer.json(), "accounts": accounts.json()}
    return got


def _trace(gateway, path, *flags: str) -> list[dict]:
    done = gateway.cli("audit", "trace", str(path), "--json", *flags)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _who(line: dict) -> set[tuple[str, str]]:
    return {(d["client_id"], d["consent_id"]) for d in line["deliveries"]}


def test_each_record_names_the_tpps_that_received_it_even_altered(gateway, deliveries, tmp_path):
    demo, other = deliveries["tpp-demo"], deliveries["tpp-other"]
    records = demo["transactions"]["Data"]["Transaction"]
    debit = next(r for r in records if r["CreditDebitIndicator"] == "Debit")
    credit = next(r for r in records if r["CreditDebitIndicator"] == "Credit")
    assert credit["TransactionId"] in {r["TransactionId"] for r in other["transactions"]["Data"]["Transaction"]}
    assert debit["TransactionId"] not in {r["TransactionId"] for r in other["transactions"]["Data"]["Transaction"]}
    # The leak: the debit with its amount and description altered, the credit as it was, a record never delivered.
    altered = {**debit, "Amount": {"Amount": "9999.99", "Currency": "GBP"}, "TransactionInformation": "changed"}
    never = {**credit, "TransactionId": "tx-never-delivered"}
    leak = tmp_path / "leak.json"
    leak.write_text(json.dumps({"Data": {"Transaction": [altered, credit, never]}}))

    lines = _trace(gateway, leak)

    assert [line["record"] for line in lines] == [debit["TransactionId"], credit["TransactionId"], "tx-never-delivered"]
    assert all(line["kind"] == "Transaction" for line in lines)
    assert _who(lines[0]) == {("tpp-demo", demo["consent_id"])}
    assert _who(lines[1]) == {("tpp-demo", demo["consent_id"]), ("tpp-other", other["consent_id"])}
    assert lines[2]["deliveries"] == []
    assert all(d["ts"] for line in lines for d in line["deliveries"])


def test_bare_records_as_json_lines_are_named_by_the_fields_they_have(gateway, deliveries, tmp_path):
    """A transaction found alone is a Transaction, not also its Account; an account record is the account's."""
    demo, other = deliveries["tpp-demo"], deliveries["tpp-other"]
    credit = next(r for r in demo["transactions"]["Data"]["Transaction"] if r["CreditDebitIndicator"] == "Credit")
    account = next(a for a in demo["accounts"]["Data"]["Account"] if a["AccountId"] == CURRENT)
    leak = tmp_path / "leak.jsonl"
    leak.write_text(json.dumps(credit) + "\n\n" + json.dumps({"AccountId": CURRENT, "Nickname": "x"}) + "\n"
                    + json.dumps({"AccountId": "acc-bob-current"}) + "\n")

    lines = _trace(gateway, leak)

    assert [(line["kind"], line["record"]) for line in lines] == [
        ("Transaction", credit["TransactionId"]), ("Account", account["AccountId"]), ("Account", "acc-bob-current")]
    assert _who(lines[0]) == {("tpp-demo", demo["consent_id"]), ("tpp-other", other["consent_id"])}
    assert _who(lines[1]) == {("tpp-demo", demo["consent_id"]), ("tpp-other", other["consent_id"])}
    assert lines[2]["deliveries"] == []


def test_the_log_holds_fingerprints_not_identities(gateway, deliveries):
    demo = deliveries["tpp-demo"]
    reads = [r for r in gateway.audit("--consent", demo["consent_id"]) if r["route"].endswith("/transactions")]
    assert len(reads) == 1
    assert len(reads[0]["delivered"]) == len(demo["transactions"]["Data"]["Transaction"])
    text = json.dumps(reads)
    assert not any(r["TransactionId"] in text for r in demo["transactions"]["Data"]["Transaction"])


def test_the_human_output_says_when_no_tpp_received_a_record_and_the_lookup_is_recorded(gateway, deliveries,
                                                                                        tmp_path):
    leak = tmp_path / "one.json"
    leak.write_text(json.dumps([{"AccountId": CURRENT, "TransactionId": "tx-nobody"}]))
    before = len([r for r in gateway.audit() if r["route"] == "obgw audit trace"])
    done = gateway.cli("audit", "trace", str(leak))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Transaction tx-nobody: received by no TPP"
    recorded = [r for r in gateway.audit() if r["route"] == "obgw audit trace"]
    assert len(recorded) == before + 1 and recorded[-1]["operator"] and recorded[-1]["method"] == "CLI"


@pytest.mark.parametrize(("content", "message"), [
    ('{"Data": {"Transaction": [}', "bad.json:1:"),
    ('{"AccountId": "a"}\n{"AccountId": \n', "bad.json:2:"),
    ('{"Nothing": "here"}', "no UK Open Banking record"),
])
def test_an_unreadable_file_is_a_clear_error_naming_where(gateway, tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    done = gateway.cli("audit", "trace", str(bad))
    assert done.returncode == 2
    assert message in done.stderr and done.stdout == ""
