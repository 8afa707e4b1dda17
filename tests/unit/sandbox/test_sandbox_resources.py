"""Accounts service: the AISP resources beyond accounts and transactions, per account and in bulk.

Beneficiaries, direct debits, standing orders, scheduled payments, statements, products, offers and parties: each
answer validates against its UK OB v3.1.11 schema, and what it says agrees with the customer's books.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from gateway.sandbox.data import Bank

AISP = "/open-banking/v3.1/aisp"
CUSTOMERS = ("alice", "bob")
# (path under /accounts/{AccountId}, bulk path, response type, OB Data array name)
RESOURCES = [
    ("balances", "balances", "OBReadBalance1", "Balance"),
    ("transactions", "transactions", "OBReadTransaction6", "Transaction"),
    ("beneficiaries", "beneficiaries", "OBReadBeneficiary5", "Beneficiary"),
    ("direct-debits", "direct-debits", "OBReadDirectDebit2", "DirectDebit"),
    ("standing-orders", "standing-orders", "OBReadStandingOrder6", "StandingOrder"),
    ("scheduled-payments", "scheduled-payments", "OBReadScheduledPayment3", "ScheduledPayment"),
    ("statements", "statements", "OBReadStatement2", "Statement"),
    ("product", "products", "OBReadProduct2", "Product"),
    ("offers", "offers", "OBReadOffer1", "Offer"),
]
ACCOUNT_ONLY = [
    "party", "parties", "statements/stmt-acc-alice-current-202605", "statements/stmt-acc-alice-current-202605/file",
    "statements/stmt-acc-alice-current-202605/transactions",
]


def who(customer: str) -> dict[str, str]:
    return {"x-bank-customer-id": customer}


def pence(amount: dict) -> int:
    return int(Decimal(amount["Amount"]) * 100)


def read_all(client, every_page, path: str, customer: str, name: str) -> list[dict]:
    return [record for page in every_page(client, path, who(customer)) for record in page["Data"][name]]


def account_ids(bank: Bank, customer: str) -> list[str]:
    return [account.account_id for account in bank.ledger.accounts_of(customer)]


@pytest.mark.parametrize("customer", CUSTOMERS)
@pytest.mark.parametrize(("path", "bulk", "schema", "name"), RESOURCES, ids=[r[2] for r in RESOURCES])
def test_bulk_answers_hold_each_accounts_records(bank: Bank, accounts_client, every_page, assert_ob, customer: str,
                                                 path: str, bulk: str, schema: str, name: str) -> None:
    answers = every_page(accounts_client, f"{AISP}/{bulk}", who(customer))
    for answer in answers:
        assert_ob(answer, "aisp", schema)
    everything = [record for answer in answers for record in answer["Data"][name]]
    per_account = {}
    for account_id in account_ids(bank, customer):
        pages = every_page(accounts_client, f"{AISP}/accounts/{account_id}/{path}", who(customer))
        for answer in pages:
            assert_ob(answer, "aisp", schema)
        per_account[account_id] = [record for answer in pages for record in answer["Data"][name]]
        assert all(record["AccountId"] == account_id for record in per_account[account_id])
    if name == "Transaction":  # newest first across all the accounts
        times = [datetime.fromisoformat(r["BookingDateTime"]) for r in everything]
        assert times == sorted(times, reverse=True)
        assert sorted(everything, key=lambda r: r["TransactionId"]) == sorted(
            (r for records in per_account.values() for r in records), key=lambda r: r["TransactionId"])
    else:
        assert everything == [record for records in per_account.values() for record in records]
    assert everything


@pytest.mark.parametrize(("path", "bulk", "schema", "name"), RESOURCES, ids=[r[2] for r in RESOURCES])
def test_bulk_answers_narrow_to_the_accounts_asked_for(accounts_client, every_page, path: str, bulk: str, schema: str,
                                                       name: str) -> None:
    asked = ("acc-alice-current", "acc-alice-card", "acc-bob-current")  # bob's is ignored: not alice's
    url = f"{AISP}/{bulk}?account_ids={','.join(asked)}"
    found = read_all(accounts_client, every_page, url, "alice", name)
    expected = [
        record for account_id in asked[:2]
        for record in read_all(accounts_client, every_page, f"{AISP}/accounts/{account_id}/{path}", "alice", name)
    ]
    key = (lambda r: r["TransactionId"]) if name == "Transaction" else None
    assert sorted(found, key=key or repr) == sorted(expected, key=key or repr)
    assert {record["AccountId"] for record in found} <= set(asked[:2])


@pytest.mark.parametrize("path", [r[0] for r in RESOURCES] + ACCOUNT_ONLY)
def test_another_customers_account_is_not_found(accounts_client, assert_ob, path: str) -> None:
    for account_id in ("acc-alice-current", "acc-nope"):
        response = accounts_client.get(f"{AISP}/accounts/{account_id}/{path}", headers=who("bob"))
        assert response.status_code == 404
        assert_ob(response.json(), "aisp", "OBErrorResponse1")
        assert response.json()["Errors"][0] == {"ErrorCode": "UK.OBIE.Resource.NotFound",
                                                "Message": "account not found", "Path": "AccountId"}


@pytest.mark.parametrize("path", [f"accounts/acc-alice-current/{p}" for p in ACCOUNT_ONLY] + [r[1] for r in RESOURCES]
                         + ["party"])
def test_the_customer_header_is_required(accounts_client, path: str) -> None:
    response = accounts_client.get(f"{AISP}/{path}")
    assert response.status_code == 403
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Header.Missing"


def test_reads_are_get_only(accounts_client) -> None:
    response = accounts_client.post(f"{AISP}/beneficiaries", headers=who("alice"), json={})
    assert response.status_code == 405


# -- beneficiaries -------------------------------------------------------------------------------------------------

def transactions(accounts_client, every_page, account_id: str, customer: str) -> list[dict]:
    return read_all(accounts_client, every_page, f"{AISP}/accounts/{account_id}/transactions", customer, "Transaction")


def coded(records: list[dict], code: str) -> list[dict]:
    return [r for r in records if r["ProprietaryBankTransactionCode"]["Code"] == code]


@pytest.mark.parametrize("customer", CUSTOMERS)
def test_beneficiaries_are_the_people_the_customer_pays(accounts_client, every_page, customer: str) -> None:
    current = f"acc-{customer}-current"
    payees = read_all(accounts_client, every_page, f"{AISP}/accounts/{current}/beneficiaries", customer, "Beneficiary")
    assert len(payees) >= 2 and len({p["BeneficiaryId"] for p in payees}) == len(payees)
    for payee in payees:
        assert {"SchemeName", "Identification", "Name"} <= set(payee["CreditorAccount"])
        assert payee["CreditorAgent"]["SchemeName"] == "UK.OBIE.BICFI" and payee["Reference"]
    history = transactions(accounts_client, every_page, current, customer)
    rent = [r for r in coded(history, "SO") if r["TransactionInformation"].endswith(" RENT")]
    landlord = next(p for p in payees if p["Reference"] == "RENT")
    assert rent and all(r["CreditorAccount"] == landlord["CreditorAccount"] for r in rent)
    assert landlord["BeneficiaryType"] == "Trusted"
    friends_paid = {r["CreditorAccount"]["Name"]: r["CreditorAccount"] for r in coded(history, "FPO")}
    saved = {p["CreditorAccount"]["Name"]: p["CreditorAccount"] for p in payees}
    assert friends_paid and all(saved[name] == account for name, account in friends_paid.items())


@pytest.mark.parametrize("path", ["beneficiaries", "standing-orders", "scheduled-payments"])
def test_alice_pays_cards_named_by_their_full_numbers(bank: Bank, accounts_client, path: str) -> None:
    """Her own credit card here, and a store card elsewhere that a standing order pays."""
    answer = accounts_client.get(f"{AISP}/{path}", headers=who("alice")).json()["Data"]
    [records] = answer.values()
    cards = {r["CreditorAccount"]["Identification"] for r in records
             if r["CreditorAccount"]["SchemeName"] == "UK.OBIE.PAN"}
    assert cards and all(len(pan) == 16 and pan.isdigit() for pan in cards)
    orders = accounts_client.get(f"{AISP}/standing-orders", headers=who("alice")).json()["Data"]["StandingOrder"]
    [store_card] = [o["CreditorAccount"]["Identification"] for o in orders if o["Reference"] == "JOHN LEWIS CARD"]
    own_card = bank.ledger.account("acc-alice-card").identification
    assert cards == ({own_card, store_card} if path == "beneficiaries" else {store_card})


# -- direct debits and standing orders -----------------------------------------------------------------------------

@pytest.mark.parametrize("customer", CUSTOMERS)
def test_a_mandate_per_direct_debit_payee_showing_the_last_payment(bank: Bank, accounts_client, every_page,
                                                                   customer: str) -> None:
    mandates = read_all(accounts_client, every_page, f"{AISP}/direct-debits", customer, "DirectDebit")
    assert len({m["MandateIdentification"] for m in mandates}) == len(mandates) >= 4
    for account_id in account_ids(bank, customer):
        debits = coded(transactions(accounts_client, every_page, account_id, customer), "DD")  # newest first
        payees = {r["CreditorAccount"]["Name"] for r in debits}
        mine = {m["Name"]: m for m in mandates if m["AccountId"] == account_id}
        assert set(mine) == payees
        for name, mandate in mine.items():
            last = next(r for r in debits if r["CreditorAccount"]["Name"] == name)
            assert mandate["PreviousPaymentDateTime"] == last["BookingDateTime"]
            assert mandate["PreviousPaymentAmount"] == last["Amount"]
            assert mandate["DirectDebitStatusCode"] == "Active"


@pytest.mark.parametrize(("customer", "references"), [("alice", {"RENT", "JOHN LEWIS CARD"}),
                                                        ("bob", {"RENT", "ALLOTMENT SHARE"})])
def test_standing_orders_match_the_payments_they_make(accounts_client, every_page, anchor: datetime, customer: str,
                                                      references: set[str]) -> None:
    current = f"acc-{customer}-current"
    orders = read_all(accounts_client, every_page, f"{AISP}/standing-orders", customer, "StandingOrder")
    assert {o["Reference"] for o in orders} == references
    paid = coded(transactions(accounts_client, every_page, current, customer), "SO")  # newest first
    for order in orders:
        made = [r for r in paid if r["CreditorAccount"] == order["CreditorAccount"]]
        assert len(made) >= 6 and all(r["TransactionInformation"].endswith(order["Reference"]) for r in made)
        times = [datetime.fromisoformat(order[f"{when}PaymentDateTime"]) for when in ("First", "Last", "Next", "Final")]
        assert times == sorted(times) and times[1] < anchor <= times[2] < anchor + timedelta(days=31)
        assert order["FirstPaymentDateTime"] == made[-1]["BookingDateTime"]
        assert order["LastPaymentDateTime"] == made[0]["BookingDateTime"]
        assert order["LastPaymentAmount"] == order["NextPaymentAmount"] == made[0]["Amount"]
        day = datetime.fromisoformat(made[0]["BookingDateTime"]).day
        assert order["Frequency"] == f"IntrvlMnthDay:01:{day:02d}" and times[2].day == day
        assert order["CreditorAgent"]["Identification"] == made[0]["CreditorAgent"]["Identification"]


def test_bobs_chip_in_standing_order_pays_alices_current_account(bank: Bank, accounts_client) -> None:
    orders = accounts_client.get(f"{AISP}/standing-orders", headers=who("bob")).json()["Data"]["StandingOrder"]
    [chip_in] = [o for o in orders if o["Reference"] == "ALLOTMENT SHARE"]
    assert chip_in["CreditorAccount"] == bank.ledger.account("acc-alice-current").reference()
    credits = [e for e in bank.ledger.entries("acc-alice-current") if e.details.get("DebtorAccount", {}).get(
        "Name") == "Bob Jones"]
    assert credits[-1].booked.isoformat() == chip_in["LastPaymentDateTime"]


# -- scheduled payments, products, offers --------------------------------------------------------------------------

@pytest.mark.parametrize("customer", CUSTOMERS)
def test_scheduled_payments_are_future_payments_to_saved_payees(accounts_client, anchor: datetime,
                                                                 customer: str) -> None:
    headers = who(customer)
    scheduled = accounts_client.get(f"{AISP}/scheduled-payments", headers=headers).json()["Data"]["ScheduledPayment"]
    payees = accounts_client.get(f"{AISP}/beneficiaries", headers=headers).json()["Data"]["Beneficiary"]
    assert scheduled
    for payment in scheduled:
        assert datetime.fromisoformat(payment["ScheduledPaymentDateTime"]) > anchor
        assert payment["ScheduledType"] == "Execution" and pence(payment["InstructedAmount"]) > 0
        assert payment["CreditorAccount"] in [p["CreditorAccount"] for p in payees]


@pytest.mark.parametrize("customer", CUSTOMERS)
def test_each_account_has_the_product_its_type_says(bank: Bank, accounts_client, customer: str) -> None:
    products = accounts_client.get(f"{AISP}/products", headers=who(customer)).json()["Data"]["Product"]
    assert [p["AccountId"] for p in products] == account_ids(bank, customer)
    for product in products:
        account = bank.ledger.account(product["AccountId"])
        assert product["ProductName"] == account.description and product["ProductId"]
        if account.sub_type == "CurrentAccount":
            assert product["ProductType"] == "PersonalCurrentAccount"
        else:
            assert product["ProductType"] == "Other" and product["OtherProductType"]["Name"]


@pytest.mark.parametrize("customer", CUSTOMERS)
def test_the_savings_product_states_the_rate_the_account_earns(bank: Bank, accounts_client, customer: str) -> None:
    savings = bank.ledger.account(f"acc-{customer}-savings")
    [product] = accounts_client.get(f"{AISP}/accounts/{savings.account_id}/product",
                                    headers=who(customer)).json()["Data"]["Product"]
    [band] = product["OtherProductType"]["CreditInterest"]["TierBandSet"][0]["TierBand"]
    rate = Decimal(band["BankInterestRate"])
    assert Decimal(band["AER"]) > rate > 0
    interest = [e for e in bank.ledger.entries(savings.account_id) if e.proprietary_code == "INT"]
    assert len(interest) >= 6
    for entry in interest:
        before = bank.ledger.balance_before(savings.account_id, entry.booked)
        assert entry.amount == int(before * rate * 100) // 120000


@pytest.mark.parametrize("customer", CUSTOMERS)
def test_offers_are_current_and_priced(accounts_client, anchor: datetime, customer: str) -> None:
    offers = accounts_client.get(f"{AISP}/offers", headers=who(customer)).json()["Data"]["Offer"]
    assert offers
    for offer in offers:
        assert datetime.fromisoformat(offer["StartDateTime"]) <= anchor < datetime.fromisoformat(offer["EndDateTime"])
        assert pence(offer["Amount"]) > 0 and "Fee" in offer and offer["Rate"] and offer["URL"].startswith("https://")


# -- parties -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("customer", "name"), [("alice", "Alice Smith"), ("bob", "Bob Jones")])
def test_party_is_the_customer_themselves(accounts_client, assert_ob, customer: str, name: str) -> None:
    body = accounts_client.get(f"{AISP}/party", headers=who(customer)).json()
    assert_ob(body, "aisp", "OBReadParty2")
    party = body["Data"]["Party"]
    assert party["Name"] == name and name.split()[-1] in party["FullLegalName"]
    assert party["PartyId"] and party["PartyNumber"] and "@" in party["EmailAddress"]
    assert party["Phone"].startswith("+44-") and party["Mobile"].startswith("+44-7")
    assert party["Address"][0]["Country"] == "GB" and party["Address"][0]["PostCode"]


@pytest.mark.parametrize("customer", CUSTOMERS)
def test_an_accounts_party_is_its_owner_related_to_it(bank: Bank, accounts_client, customer: str) -> None:
    own = accounts_client.get(f"{AISP}/party", headers=who(customer)).json()["Data"]["Party"]
    for account_id in account_ids(bank, customer):
        answer = accounts_client.get(f"{AISP}/accounts/{account_id}/party", headers=who(customer)).json()
        party = answer["Data"]["Party"]
        assert party["PartyId"] == own["PartyId"] and party["AccountRole"] == "UK.OBIE.Principal"
        assert party["PartyType"] == ("Joint" if account_id.endswith("-savings") else "Sole")
        link = party["Relationships"]["Account"]
        assert link["Id"] == account_id and link["Related"] == f"http://bank.test{AISP}/accounts/{account_id}"


@pytest.mark.parametrize(("customer", "partner"), [("alice", "Daniel Reid"), ("bob", "Hannah Jones")])
def test_a_joint_account_has_two_parties(bank: Bank, accounts_client, assert_ob, customer: str, partner: str) -> None:
    joint = f"acc-{customer}-savings"
    body = accounts_client.get(f"{AISP}/accounts/{joint}/parties", headers=who(customer)).json()
    assert_ob(body, "aisp", "OBReadParty3")
    owner, other = body["Data"]["Party"]
    assert owner["Name"] == bank.customers[customer].display_name and other["Name"] == partner
    assert partner not in {c.display_name for c in bank.customers.values()}  # not someone who logs in here
    assert owner["PartyId"] != other["PartyId"] and {owner["PartyType"], other["PartyType"]} == {"Joint"}
    assert (owner["AccountRole"], other["AccountRole"]) == ("UK.OBIE.Principal", "UK.OBIE.SecondaryOwner")
    assert owner["Relationships"] == other["Relationships"]
    assert partner in bank.ledger.account(joint).reference()["Name"]


def test_a_sole_account_has_one_party(accounts_client) -> None:
    parties = accounts_client.get(f"{AISP}/accounts/acc-bob-current/parties", headers=who("bob")).json()
    assert [p["Name"] for p in parties["Data"]["Party"]] == ["Bob Jones"]
    assert parties["Data"]["Party"][0]["PartyType"] == "Sole"
