"""The whole Account and Transaction API (UK OB v3.1.11, its 26 resource operations) through `obgw serve` with
tokens from the real flow and the sandbox bank: every answer schema-valid, Basic vs Detail, each permission's
absence refused, unselected accounts refused or absent, card numbers masked without ReadPAN, paging links that lead
back through the gateway, and the statement file."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from support.gateway import bank_gateway
from support.openapi import assert_ok, assert_refused

pytestmark = pytest.mark.e2e

AISP = "/open-banking/v3.1/aisp"
CURRENT, SAVINGS, CARD = "acc-alice-current", "acc-alice-savings", "acc-alice-card"
ACCOUNTS = [CURRENT, SAVINGS, CARD]
DIRECTIONS = ["ReadTransactionsCredits", "ReadTransactionsDebits"]
EVERY_BASIC = ["ReadAccountsBasic", "ReadBalances", "ReadBeneficiariesBasic", "ReadDirectDebits",
               "ReadStandingOrdersBasic", "ReadScheduledPaymentsBasic", "ReadStatementsBasic", "ReadTransactionsBasic",
               *DIRECTIONS, "ReadProducts", "ReadOffers", "ReadParty", "ReadPartyPSU"]
EVERY_DETAIL = ["ReadAccountsDetail", "ReadBalances", "ReadBeneficiariesDetail", "ReadDirectDebits",
                "ReadStandingOrdersDetail", "ReadScheduledPaymentsDetail", "ReadStatementsDetail",
                "ReadTransactionsDetail", *DIRECTIONS, "ReadProducts", "ReadOffers", "ReadParty", "ReadPartyPSU"]

# (path under /aisp with {AccountId} and {StatementId}, response type, the permissions that open it)
ACCOUNT_ROUTES = [
    ("/accounts/{AccountId}", "OBReadAccount6", ["ReadAccountsBasic", "ReadAccountsDetail"]),
    ("/accounts/{AccountId}/balances", "OBReadBalance1", ["ReadBalances"]),
    ("/accounts/{AccountId}/transactions", "OBReadTransaction6", ["ReadTransactionsBasic", "ReadTransactionsDetail"]),
    ("/accounts/{AccountId}/beneficiaries", "OBReadBeneficiary5", ["ReadBeneficiariesBasic",
                                                                   "ReadBeneficiariesDetail"]),
    ("/accounts/{AccountId}/direct-debits", "OBReadDirectDebit2", ["ReadDirectDebits"]),
    ("/accounts/{AccountId}/standing-orders", "OBReadStandingOrder6", ["ReadStandingOrdersBasic",
                                                                       "ReadStandingOrdersDetail"]),
    ("/accounts/{AccountId}/scheduled-payments", "OBReadScheduledPayment3", ["ReadScheduledPaymentsBasic",
                                                                             "ReadScheduledPaymentsDetail"]),
    ("/accounts/{AccountId}/statements", "OBReadStatement2", ["ReadStatementsBasic", "ReadStatementsDetail"]),
    ("/accounts/{AccountId}/statements/{StatementId}", "OBReadStatement2", ["ReadStatementsBasic",
                                                                            "ReadStatementsDetail"]),
    ("/accounts/{AccountId}/statements/{StatementId}/transactions", "OBReadTransaction6",
     ["ReadTransactionsBasic", "ReadTransactionsDetail"]),
    ("/accounts/{AccountId}/statements/{StatementId}/file", None, ["ReadStatementsDetail"]),
    ("/accounts/{AccountId}/product", "OBReadProduct2", ["ReadProducts"]),
    ("/accounts/{AccountId}/offers", "OBReadOffer1", ["ReadOffers"]),
    ("/accounts/{AccountId}/party", "OBReadParty2", ["ReadParty"]),
    ("/accounts/{AccountId}/parties", "OBReadParty3", ["ReadParty"]),
]
BULK_ROUTES = [
    ("/accounts", "OBReadAccount6", "Account", ["ReadAccountsBasic", "ReadAccountsDetail"]),
    ("/balances", "OBReadBalance1", "Balance", ["ReadBalances"]),
    ("/transactions", "OBReadTransaction6", "Transaction", ["ReadTransactionsBasic", "ReadTransactionsDetail"]),
    ("/beneficiaries", "OBReadBeneficiary5", "Beneficiary", ["ReadBeneficiariesBasic", "ReadBeneficiariesDetail"]),
    ("/direct-debits", "OBReadDirectDebit2", "DirectDebit", ["ReadDirectDebits"]),
    ("/standing-orders", "OBReadStandingOrder6", "StandingOrder", ["ReadStandingOrdersBasic",
                                                                   "ReadStandingOrdersDetail"]),
    ("/scheduled-payments", "OBReadScheduledPayment3", "ScheduledPayment", ["ReadScheduledPaymentsBasic",
                                                                            "ReadScheduledPaymentsDetail"]),
    ("/statements", "OBReadStatement2", "Statement", ["ReadStatementsBasic", "ReadStatementsDetail"]),
    ("/products", "OBReadProduct2", "Product", ["ReadProducts"]),
    ("/offers", "OBReadOffer1", "Offer", ["ReadOffers"]),
]
# Basic vs Detail per resource: (bulk path, record list, Basic permission, Detail permission, Detail-only fields)
DETAIL_ONLY = [
    ("/accounts", "Account", "ReadAccountsBasic", "ReadAccountsDetail", {"Account", "Servicer"}),
    ("/beneficiaries", "Beneficiary", "ReadBeneficiariesBasic", "ReadBeneficiariesDetail",
     {"CreditorAccount", "CreditorAgent"}),
    ("/standing-orders", "StandingOrder", "ReadStandingOrdersBasic", "ReadStandingOrdersDetail",
     {"CreditorAccount", "CreditorAgent"}),
    ("/scheduled-payments", "ScheduledPayment", "ReadScheduledPaymentsBasic", "ReadScheduledPaymentsDetail",
     {"CreditorAccount", "CreditorAgent"}),
    ("/statements", "Statement", "ReadStatementsBasic", "ReadStatementsDetail", {"StatementAmount"}),
    ("/transactions", "Transaction", "ReadTransactionsBasic", "ReadTransactionsDetail",
     {"TransactionInformation", "Balance", "MerchantDetails", "CreditorAccount", "DebtorAccount"}),
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, bank)
    # Dozens of consents in a few seconds: past the standard tier's consent-creation limit, which is not tested here.
    assert gw.cli("clients", "set-tier", "tpp-demo", "unlimited").returncode == 0
    yield gw
    assert gw.stop() == 0


@pytest.fixture(scope="module")
def everything(module_tpp):
    """One consent with every AIS permission at Detail level and ReadPAN, on all of alice's accounts."""
    return module_tpp.consent_token([*EVERY_DETAIL, "ReadPAN"], accounts=ACCOUNTS)


@pytest.fixture(scope="module")
def statement_id(module_tpp, everything) -> str:
    statements = assert_ok(module_tpp.get(f"{AISP}/accounts/{CURRENT}/statements", everything), "OBReadStatement2")
    assert len(statements["Data"]["Statement"]) >= 3
    return statements["Data"]["Statement"][0]["StatementId"]


def _path(template: str, account: str, statement: str) -> str:
    return AISP + template.format(AccountId=account, StatementId=statement)


@pytest.mark.parametrize("template, schema, _", ACCOUNT_ROUTES, ids=[r[0] for r in ACCOUNT_ROUTES])
def test_every_account_scoped_operation_answers_schema_valid(module_tpp, everything, statement_id, template,
                                                             schema, _):
    response = module_tpp.get(_path(template, CURRENT, statement_id), everything)
    if schema is None:  # the statement file
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/pdf"
        return
    assert_ok(response, schema)


@pytest.mark.parametrize("path, schema, records, _", BULK_ROUTES, ids=[r[0] for r in BULK_ROUTES])
def test_every_bulk_operation_answers_schema_valid_with_only_the_selected_accounts(module_tpp, path, schema,
                                                                                   records, _):
    token = module_tpp.consent_token(EVERY_DETAIL, accounts=[CURRENT, CARD])
    body = assert_ok(module_tpp.get(AISP + path, token), schema)
    found = {record["AccountId"] for record in body["Data"][records]}
    assert found and found <= {CURRENT, CARD}, found


def test_party_of_the_customer_needs_read_party_psu(module_tpp, everything):
    party = assert_ok(module_tpp.get(AISP + "/party", everything), "OBReadParty2")["Data"]["Party"]
    assert party["Name"] and party["PartyId"]
    token = module_tpp.consent_token(["ReadAccountsBasic", "ReadParty"], accounts=[CURRENT])
    assert_refused(module_tpp.get(AISP + "/party", token), 403, "UK.OBIE.Resource.InvalidConsentStatus")


def test_a_joint_account_has_two_parties_and_one_owner(module_tpp, everything):
    counts = {}
    for account in ACCOUNTS:
        body = assert_ok(module_tpp.get(f"{AISP}/accounts/{account}/parties", everything), "OBReadParty3")
        counts[account] = len(body["Data"]["Party"])
        owner = assert_ok(module_tpp.get(f"{AISP}/accounts/{account}/party", everything), "OBReadParty2")
        assert owner["Data"]["Party"]["PartyId"]
    assert 2 in counts.values(), counts


# Every consent holds ReadAccountsBasic or ReadAccountsDetail (AIS profile): /accounts/{AccountId} is always open.
@pytest.mark.parametrize("template, _, permissions", ACCOUNT_ROUTES[1:], ids=[r[0] for r in ACCOUNT_ROUTES[1:]])
def test_each_account_scoped_operation_refuses_a_consent_without_its_permission(module_tpp, everything,
                                                                                statement_id, template, _,
                                                                                permissions):
    lacking = [p for p in [*EVERY_DETAIL, *EVERY_BASIC] if p not in permissions]
    if not {"ReadTransactionsBasic", "ReadTransactionsDetail"} & set(lacking):
        lacking = [p for p in lacking if p not in DIRECTIONS]
    token = module_tpp.consent_token(sorted(set(lacking)), accounts=[CURRENT])
    assert_refused(module_tpp.get(_path(template, CURRENT, statement_id), token), 403,
             "UK.OBIE.Resource.InvalidConsentStatus")


@pytest.mark.parametrize("path, _, __, permissions", BULK_ROUTES[1:], ids=[r[0] for r in BULK_ROUTES[1:]])
def test_each_bulk_operation_refuses_a_consent_without_its_permission(module_tpp, path, _, __, permissions):
    lacking = ["ReadAccountsBasic", *(p for p in EVERY_DETAIL if p not in permissions and p not in DIRECTIONS)]
    if "ReadTransactionsDetail" in lacking:
        lacking += DIRECTIONS
    token = module_tpp.consent_token(sorted(set(lacking)), accounts=[CURRENT])
    assert_refused(module_tpp.get(AISP + path, token), 403, "UK.OBIE.Resource.InvalidConsentStatus")


@pytest.mark.parametrize("template, _, __", ACCOUNT_ROUTES, ids=[r[0] for r in ACCOUNT_ROUTES])
def test_an_unselected_account_is_refused_on_every_account_scoped_operation(module_tpp, statement_id, template,
                                                                            _, __, only_current):
    answer = module_tpp.get(_path(template, SAVINGS, statement_id), only_current)
    assert_refused(answer, 403, "UK.OBIE.Resource.NotFound")


@pytest.fixture(scope="module")
def only_current(module_tpp):
    return module_tpp.consent_token([*EVERY_DETAIL, "ReadPAN"], accounts=[CURRENT])


@pytest.mark.parametrize("path, schema, records, _", BULK_ROUTES, ids=[r[0] for r in BULK_ROUTES])
def test_an_unselected_account_is_absent_from_every_bulk_operation(module_tpp, everything, path, schema, records,
                                                                   _):
    every = assert_ok(module_tpp.get(AISP + path, everything), schema)["Data"][records]
    owners = {record["AccountId"] for record in every}
    left_out = sorted(owners)[0]  # an account that has such records
    selected = [account for account in ACCOUNTS if account != left_out]
    token = module_tpp.consent_token(EVERY_DETAIL, accounts=selected)
    shown = {record["AccountId"] for record in assert_ok(module_tpp.get(AISP + path, token), schema)["Data"][records]}
    assert left_out not in shown and shown <= set(selected)


@pytest.mark.parametrize("path, records, basic, detail, detail_only", DETAIL_ONLY, ids=[r[0] for r in DETAIL_ONLY])
def test_basic_leaves_out_what_only_detail_shows(module_tpp, path, records, basic, detail, detail_only):
    extra = DIRECTIONS if "Transactions" in basic else []
    base = [] if path == "/accounts" else ["ReadAccountsBasic"]
    basic_token = module_tpp.consent_token([*base, basic, *extra], accounts=ACCOUNTS)
    detail_token = module_tpp.consent_token([*base, detail, *extra], accounts=ACCOUNTS)
    basic_records = module_tpp.get(AISP + path, basic_token).json()["Data"][records]
    detail_records = module_tpp.get(AISP + path, detail_token).json()["Data"][records]
    assert basic_records and len(basic_records) == len(detail_records)
    assert not any(detail_only & set(record) for record in basic_records)
    shown = set().union(*(set(record) for record in detail_records))
    assert detail_only & shown, f"Detail shows none of {detail_only}"


def _identifications(node: object):
    """Every (SchemeName, Identification) pair anywhere in an answer."""
    if isinstance(node, dict):
        if "SchemeName" in node and "Identification" in node:
            yield node["SchemeName"], node["Identification"]
        for value in node.values():
            yield from _identifications(value)
    elif isinstance(node, list):
        for item in node:
            yield from _identifications(item)


@pytest.mark.parametrize("path", ["/accounts", "/transactions", "/beneficiaries", "/standing-orders",
                                  "/scheduled-payments"])
def test_card_numbers_are_masked_without_read_pan(module_tpp, everything, path):
    without = module_tpp.consent_token(EVERY_DETAIL, accounts=ACCOUNTS)
    masked = [i for s, i in _identifications(module_tpp.get(AISP + path, without).json()) if s == "UK.OBIE.PAN"]
    clear = [i for s, i in _identifications(module_tpp.get(AISP + path, everything).json()) if s == "UK.OBIE.PAN"]
    assert masked and len(masked) == len(clear), f"{path} carries no card number to mask"
    assert all(m[:-4].strip("*") == "" and m[-4:] == c[-4:] for m, c in zip(masked, clear, strict=True))
    assert all(c.isdigit() for c in clear)


def test_links_next_leads_through_the_gateway_to_the_next_page(gateway, module_tpp):
    token = module_tpp.consent_token(["ReadAccountsBasic", "ReadTransactionsBasic", *DIRECTIONS],
                                     accounts=[CURRENT])
    first = assert_ok(module_tpp.get(f"{AISP}/accounts/{CURRENT}/transactions", token), "OBReadTransaction6")
    assert first["Meta"]["TotalPages"] >= 2
    links = first["Links"]
    for name in ("Self", "First", "Next", "Last"):
        assert links[name].startswith(gateway.base + AISP), links
    assert "Prev" not in links and "account_ids" not in links["Next"]
    seen = [t["TransactionId"] for t in first["Data"]["Transaction"]]
    assert len(seen) == 100
    url, pages = links["Next"], 1
    while url and pages < 50:
        split = urlsplit(url)
        page = assert_ok(module_tpp.get(split.path + ("?" + split.query if split.query else ""), token),
                   "OBReadTransaction6")
        assert page["Links"]["Prev"].startswith(gateway.base + AISP)
        assert not any("TransactionInformation" in t for t in page["Data"]["Transaction"])  # still Basic
        seen += [t["TransactionId"] for t in page["Data"]["Transaction"]]
        url, pages = page["Links"].get("Next"), pages + 1
    assert pages == first["Meta"]["TotalPages"]
    assert len(seen) == len(set(seen)) > 100


def test_the_statement_file_is_the_banks_pdf_only_with_read_statements_detail(module_tpp, everything,
                                                                              statement_id):
    path = f"{AISP}/accounts/{CURRENT}/statements/{statement_id}/file"
    pdf = module_tpp.get(path, everything, headers={"Accept": "application/pdf"})
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["cache-control"] == "no-store"
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")
    assert_refused(module_tpp.get(path, everything, headers={"Accept": "application/json"}), 406,
             "UK.OBIE.Header.Invalid")
    basic = module_tpp.consent_token(["ReadAccountsBasic", "ReadStatementsBasic"], accounts=[CURRENT])
    assert_refused(module_tpp.get(path, basic), 403, "UK.OBIE.Resource.InvalidConsentStatus")


def test_statements_outside_the_consents_window_are_not_shown(module_tpp, everything):
    statements = module_tpp.get(f"{AISP}/accounts/{CURRENT}/statements", everything).json()["Data"]["Statement"]
    newest = max(statements, key=lambda s: s["StartDateTime"])
    token = module_tpp.consent_token(["ReadAccountsBasic", "ReadStatementsBasic"], accounts=[CURRENT],
                                     TransactionFromDateTime=newest["StartDateTime"])
    shown = assert_ok(module_tpp.get(f"{AISP}/accounts/{CURRENT}/statements", token), "OBReadStatement2")
    assert [s["StatementId"] for s in shown["Data"]["Statement"]] == [newest["StatementId"]]
