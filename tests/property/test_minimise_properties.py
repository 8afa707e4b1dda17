"""Property tests of the minimiser (`gateway.policy.fields.minimise`) with the shipped `policies/fields.yaml`,
loaded through `load_policy` as the gateway loads it.

The bank's answers are generated: shaped like OBReadAccount6 / OBReadBalance1 / OBReadTransaction6, with extra
fields, wrong types and nested junk at every level; so are the grants (permission subsets, account subsets, windows).
What must hold for every one of them:

- minimise returns a JSON object or raises MinimiseError - nothing else - and never changes its input;
- an answer of the right shape is never refused;
- every field that leaves is one a rule names (or lies inside an object a rule lets through whole), and every rule
  on its way down is granted - checked against `exposure()`, what `obgw policy explain` prints;
- the records that leave are exactly those of selected accounts, of granted directions (no Credit record without
  ReadTransactionsCredits) and with a readable BookingDateTime inside the consent's window, in their order;
- without ReadPAN no card number leaves unmasked (at most its last 4 digits show);
- minimise is idempotent: cutting what was cut changes nothing.

Examples are derandomized (the same examples on every run, no example database), so CI is reproducible.
"""
from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.policy import load_policy
from gateway.policy.compile import permission_codes
from gateway.policy.fields import PAN_SCHEME, Entitlement, MinimiseError, exposure, minimise

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(ROOT / "policies")
FIELD_SETS = {name: POLICY.fields[name] for name in ("OBReadAccount6", "OBReadBalance1", "OBReadTransaction6")}
# What the route of each response type requires (any one of): Admit refuses a call whose consent has none of them.
ROUTE_PERMISSIONS = {
    name: frozenset().union(*(route.permissions for route in POLICY.routes if route.response_type == name))
    for name in FIELD_SETS
}
PUBLIC_URL = "https://gateway.example/open-banking/v3.1/aisp/accounts"

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=200,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ACCOUNT_POOL = ("acc-1", "acc-2", "acc-3", "acc-4")
RELEVANT = ("ReadAccountsBasic", "ReadAccountsDetail", "ReadBalances", "ReadTransactionsBasic",
            "ReadTransactionsDetail", "ReadTransactionsCredits", "ReadTransactionsDebits", "ReadPAN")
SCHEMES_OF_PANS = (None, PAN_SCHEME)  # a card number: SchemeName UK.OBIE.PAN, or none at all (fields.yaml, mask)

# -- generated answers -----------------------------------------------------------------------------------------------
# Junk text never holds a digit and junk numbers have at most 10 digits (or are the 64-bit bounds), card numbers are
# 4999 + 12 digits and sort codes 30 + 12 digits: a card number found in the output can only come from a card field.
LETTERS = st.text(alphabet="abcxyzABC-_ ./:é", max_size=8)
NAMES = st.sampled_from(["AccountId", "Account", "Identification", "SchemeName", "Data", "Links", "Self", "Meta",
                         "Amount", "Balance", "Transaction", "CreditDebitIndicator", "BookingDateTime", "Nickname",
                         "Servicer", "CardInstrument", "x", "Extra"]) | LETTERS
SCALARS = (st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.sampled_from([-(2**63), 2**63 - 1])
           | st.floats(-1e9, 1e9, allow_nan=False) | LETTERS)
JUNK = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
                    max_leaves=8)
PAN = st.integers(0, 10**12 - 1).map(lambda n: f"4999{n:012d}")
SORT_CODE = st.integers(0, 10**12 - 1).map(lambda n: f"30{n:012d}")
WRONG = st.integers(-10**9, 10**9) | st.lists(LETTERS, max_size=2) | st.dictionaries(LETTERS, LETTERS, max_size=2)


def with_extras(draw, record: dict, names=NAMES) -> dict:
    """Extra keys the rules do not name, wherever the bank likes to put them."""
    for key, value in draw(st.dictionaries(names, JUNK, max_size=2)).items():
        record.setdefault(key, value)
    return record


@st.composite
def identification(draw, card: bool, well_formed: bool):
    """An OBAccount/CardInstrument-like identification: a card number where the scheme says so (or says nothing);
    when not well-formed, sometimes a card number that is not a string at all."""
    scheme = None if card else draw(st.sampled_from(SCHEMES_OF_PANS + ("UK.OBIE.SortCodeAccountNumber", "IBAN-ish")))
    out: dict = {} if scheme is None else {"SchemeName": scheme}
    if scheme in SCHEMES_OF_PANS:
        out["Identification"] = draw(PAN if well_formed else PAN | WRONG)
    elif scheme == "UK.OBIE.SortCodeAccountNumber":
        out["Identification"] = draw(SORT_CODE)
    else:
        out["Identification"] = draw(LETTERS)
    if draw(st.booleans()):
        out["Name"] = draw(LETTERS)
    # Extra keys, but never a second SchemeName or Identification: the scheme decides what the number is.
    return with_extras(draw, out, NAMES.filter(lambda n: n not in ("SchemeName", "Identification")))


FILTERED = ("AccountId", "CreditDebitIndicator", "BookingDateTime")  # what the record filters read


def record_extras(draw, record: dict, well_formed: bool) -> dict:
    """A record's extra keys; in a well-formed record they never give a filtered field a wrong type."""
    return with_extras(draw, record, NAMES if not well_formed else NAMES.filter(lambda n: n not in FILTERED))


def account_id(draw, well_formed: bool):
    # Mostly accounts a grant may select, so that many records pass the filters and the checks bite.
    choice = st.sampled_from(ACCOUNT_POOL * 3 + ("acc-other", None))
    return draw(choice if well_formed else choice | WRONG)


def optional(draw, record: dict, key: str, strategy) -> None:
    if draw(st.booleans()):
        record[key] = draw(strategy)


@st.composite
def account_record(draw, well_formed: bool):
    record: dict = {}
    value = account_id(draw, well_formed)
    if value is not None:
        record["AccountId"] = value
    for key in ("Status", "Currency", "AccountType", "AccountSubType", "Description", "Nickname", "OpeningDate"):
        optional(draw, record, key, LETTERS if well_formed else LETTERS | JUNK)
    if draw(st.booleans()):
        record["Account"] = draw(st.lists(identification(False, well_formed), max_size=2))
    optional(draw, record, "Servicer", st.fixed_dictionaries({"SchemeName": st.just("UK.OBIE.BICFI"),
                                                              "Identification": LETTERS}))
    return record_extras(draw, record, well_formed)


@st.composite
def balance_record(draw, well_formed: bool):
    record: dict = {}
    value = account_id(draw, well_formed)
    if value is not None:
        record["AccountId"] = value
    for key in ("CreditDebitIndicator", "Type", "DateTime"):
        optional(draw, record, key, LETTERS if well_formed else LETTERS | JUNK)
    optional(draw, record, "Amount", st.fixed_dictionaries({"Amount": LETTERS, "Currency": LETTERS}) | JUNK)
    optional(draw, record, "CreditLine", st.lists(JUNK, max_size=2))
    return record_extras(draw, record, well_formed)


OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30)),
                           timezone(timedelta(hours=14))])
MOMENTS = st.datetimes(min_value=datetime(2023, 12, 1), max_value=datetime(2026, 2, 1), timezones=OFFSETS)


@st.composite
def booking_date(draw, well_formed: bool):
    """A BookingDateTime: zoned, naive (read as UTC), Z-suffixed, a date only - or unreadable."""
    moment = draw(MOMENTS)
    forms = [moment.isoformat(), moment.replace(tzinfo=None).isoformat(),
             moment.astimezone(UTC).isoformat().replace("+00:00", "Z"), moment.date().isoformat()]
    if not well_formed:
        forms += ["yesterday", "", "2025-13-01T00:00:00Z"]
    value = draw(st.sampled_from(forms))
    return value if well_formed else draw(st.just(value) | JUNK)


@st.composite
def transaction_record(draw, well_formed: bool):
    record: dict = {}
    value = account_id(draw, well_formed)
    if value is not None:
        record["AccountId"] = value
    record["TransactionId"] = "tx-" + draw(st.text(alphabet="abcdef", min_size=1, max_size=6))
    direction = st.sampled_from(["Credit"] * 3 + ["Debit"] * 3 + ["credit", "Reversal", None])
    value = draw(direction if well_formed else direction | WRONG)
    if value is not None:
        record["CreditDebitIndicator"] = value
    if draw(st.integers(0, 9)):
        record["BookingDateTime"] = draw(booking_date(well_formed))
    for key in ("Status", "TransactionInformation", "TransactionReference", "AddressLine"):
        optional(draw, record, key, LETTERS if well_formed else LETTERS | JUNK)
    optional(draw, record, "Amount", st.fixed_dictionaries({"Amount": LETTERS, "Currency": LETTERS}))
    optional(draw, record, "Balance", JUNK)
    optional(draw, record, "MerchantDetails", JUNK)
    optional(draw, record, "CardInstrument", identification(True, well_formed))
    optional(draw, record, "CreditorAccount", identification(False, well_formed))
    optional(draw, record, "DebtorAccount", identification(False, well_formed))
    return record_extras(draw, record, well_formed)


RECORDS = {"OBReadAccount6": ("Account", account_record), "OBReadBalance1": ("Balance", balance_record),
           "OBReadTransaction6": ("Transaction", transaction_record)}


@st.composite
def answers(draw, response_type: str):
    """(document, well_formed): a bank answer of the type; not well-formed when anything in it is of a wrong type."""
    well_formed = draw(st.integers(0, 3)) > 0
    name, record = RECORDS[response_type]
    document: dict = {}
    shape = draw(st.sampled_from(["records", "records", "records", "no Data", "no records"] +
                                 ([] if well_formed else ["Data junk", "records junk", "record junk"])))
    if shape == "records":
        document["Data"] = {name: draw(st.lists(record(well_formed), min_size=draw(st.sampled_from([0, 1, 3])),
                                                max_size=6))}
    elif shape == "no records":
        document["Data"] = draw(st.dictionaries(NAMES.filter(lambda n: n != name), JUNK, max_size=2))
    elif shape == "Data junk":
        document["Data"] = draw(SCALARS | st.lists(JUNK, max_size=2))
    elif shape == "records junk":
        document["Data"] = {name: draw(SCALARS | st.dictionaries(NAMES, JUNK, max_size=2))}
    elif shape == "record junk":
        document["Data"] = {name: draw(st.lists(record(well_formed), max_size=2)) + [draw(SCALARS)]}
    if shape in ("records", "no records") and draw(st.booleans()):
        document["Data"] = with_extras(draw, document["Data"], NAMES.filter(lambda n: n != name))
    optional(draw, document, "Links", st.fixed_dictionaries({"Self": st.just("http://bank.internal/x")}) | JUNK)
    optional(draw, document, "Meta", st.fixed_dictionaries({"TotalPages": st.integers(1, 9)}) | JUNK)
    document = with_extras(draw, document, NAMES.filter(lambda n: n != "Data"))
    return document, well_formed and shape in ("records", "no records", "no Data")


@st.composite
def grants(draw, response_type: str, meets_route: bool = False):
    # Each relevant permission in or out with even odds (every subset is as likely), plus a few others.
    permissions = {code for code in RELEVANT if draw(st.booleans())}
    permissions |= draw(st.sets(st.sampled_from(permission_codes()), max_size=2))
    if meets_route:
        permissions.add(draw(st.sampled_from(sorted(ROUTE_PERMISSIONS[response_type]))))
    since = draw(st.none() | st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2025, 6, 1),
                                          timezones=st.just(UTC)))
    until = draw(st.none() | st.datetimes(min_value=datetime(2024, 6, 1), max_value=datetime(2026, 1, 1),
                                          timezones=st.just(UTC)))
    accounts = frozenset(account for account in ACCOUNT_POOL if draw(st.booleans()))
    return Entitlement(frozenset(permissions), accounts, (since, until), PUBLIC_URL)


@st.composite
def cases(draw, meets_route: bool = False):
    response_type = draw(st.sampled_from(sorted(FIELD_SETS)))
    document, well_formed = draw(answers(response_type))
    return response_type, document, well_formed, draw(grants(response_type, meets_route))


# -- the oracle: what may leave, worked out independently of minimise's own walk ------------------------------------

def rule_key(path: str) -> str:
    return path.replace("[]", "")


def leaves(value, names=()):
    """(names on the way, value) of every scalar and every empty container; list positions are not names."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from leaves(item, (*names, key))
    elif isinstance(value, list) and value:
        for item in value:
            yield from leaves(item, names)
    else:
        yield names, value


def parents(value, names):
    """Every dict reached along `names` (list items are walked through), and the value of its last name."""
    if isinstance(value, list):
        for item in value:
            yield from parents(item, names)
        return
    if not isinstance(value, dict) or names[0] not in value:
        return
    if len(names) == 1:
        yield value, value[names[0]]
    else:
        yield from parents(value[names[0]], names[1:])


def readable_moment(value) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def granted_rules(fields, permissions) -> set[str]:
    """The rules whose own permission and every one on the way down to them is granted (a rule with no
    permissions is granted to every consent that reaches the route) - worked out here from fields.yaml's rules."""
    by_key = {rule_key(rule.path): rule for rule in fields.rules}

    def granted(key: str) -> bool:
        names = key.split(".")
        for n in range(1, len(names) + 1):
            rule = by_key.get(".".join(names[:n]))
            if rule is not None and rule.permissions and not rule.permissions & permissions:
                return False
        return True
    return {key for key in by_key if granted(key)}


def kept_records(fields, records: list, grant: Entitlement) -> list:
    """The records the consent lets out: selected account, granted direction, readable date inside the window."""
    kept = []
    for record in records:
        if record.get(fields.account_field) not in grant.accounts:
            continue
        if fields.direction is not None:
            field, by_direction = fields.direction
            if by_direction.get(record.get(field)) not in grant.permissions:
                continue
        if fields.window is not None:
            moment = readable_moment(record.get(fields.window.field))
            since, until = grant.window
            if moment is None or (since and moment < since) or (until and moment > until):
                continue
        kept.append(record)
    return kept


def record_list(document: dict, fields) -> list | None:
    container = document
    for name in fields.records:
        if not isinstance(container, dict) or name not in container:
            return None
        container = container[name]
    return container


def assert_only_what_the_grant_allows(response_type: str, document: dict, grant: Entitlement, result: dict) -> None:
    fields = FIELD_SETS[response_type]
    allowed = granted_rules(fields, grant.permissions)
    said = exposure(fields, grant.permissions)  # what `obgw policy explain` says such a consent gets
    assert {rule_key(p) for p in (*said.exposed, *said.masked)} == allowed
    rules = {rule_key(rule.path) for rule in fields.rules}
    prefixes = {".".join(rule.split(".")[:n]) for rule in rules for n in range(rule.count(".") + 1)}

    # 1. Every field that leaves is governed by its deepest rule, and that rule (and every one above) is granted.
    for names, value in leaves(result):
        governing = next((".".join(names[:n]) for n in range(len(names), 0, -1) if ".".join(names[:n]) in rules),
                         None)
        if governing is None:
            # Only the containers on the way to rules may show, and only empty (they carry nothing).
            assert ".".join(names) in prefixes and value in ({}, []), (names, value)
        else:
            assert governing in allowed, (names, governing, sorted(grant.permissions))

    # 2. The records that leave are exactly the ones the consent lets out, in order.
    given_records = record_list(document, fields)
    out_records = record_list(result, fields)
    if given_records is None:
        assert out_records is None
    else:
        kept = kept_records(fields, given_records, grant)
        assert out_records is not None and len(out_records) == len(kept), (len(out_records or ()), len(kept))
        for out, source in zip(out_records, kept):
            for key in ("AccountId", "TransactionId", "BookingDateTime", "CreditDebitIndicator"):
                if key in out:
                    assert out[key] == source[key]
        if fields.direction is not None:
            field, by_direction = fields.direction
            for direction, permission in by_direction.items():
                if permission not in grant.permissions:
                    assert all(source.get(field) != direction for source in kept), direction

    # 3. Without ReadPAN, no card number leaves unmasked.
    if "ReadPAN" not in grant.permissions:
        serialised = orjson.dumps(result).decode()
        for rule in fields.rules:
            if rule.mask != "pan":
                continue
            for parent, pan in parents(document, rule_key(rule.path).split(".")):
                if isinstance(pan, str) and len(pan) > 4 and parent.get("SchemeName", PAN_SCHEME) == PAN_SCHEME:
                    assert pan not in serialised, (rule.path, pan)
            for parent, shown in parents(result, rule_key(rule.path).split(".")):
                if parent.get("SchemeName", PAN_SCHEME) == PAN_SCHEME:
                    assert isinstance(shown, str) and set(shown[:-4]) <= {"*"}, (rule.path, shown)

    # 4. Links.Self names the gateway, never the bank.
    links = result.get("Links")
    if isinstance(links, dict) and "Self" in links:
        assert links["Self"] == PUBLIC_URL


# -- the properties ---------------------------------------------------------------------------------------------------

@PROPERTY
@given(cases())
def test_minimise_returns_an_object_or_raises_minimise_error_and_never_changes_its_input(case):
    response_type, document, well_formed, grant = case
    before = copy.deepcopy(document)
    try:
        result = minimise(document, FIELD_SETS[response_type], grant)
    except MinimiseError:
        assert not well_formed, "an answer of the right shape was refused"
    else:
        assert isinstance(result, dict)
        orjson.dumps(result)  # what the gateway sends must serialise
    assert document == before


@PROPERTY
@given(cases())
def test_nothing_leaves_that_the_grant_does_not_allow(case):
    response_type, document, _, grant = case
    try:
        result = minimise(document, FIELD_SETS[response_type], grant)
    except MinimiseError:
        return
    assert_only_what_the_grant_allows(response_type, document, grant, result)


@PROPERTY
@given(cases(meets_route=True))
def test_minimise_is_idempotent_for_every_grant_the_route_admits(case):
    response_type, document, _, grant = case
    fields = FIELD_SETS[response_type]
    try:
        once = minimise(document, fields, grant)
    except MinimiseError:
        return
    assert minimise(once, fields, grant) == once


@pytest.mark.parametrize("response_type", sorted(FIELD_SETS))
def test_the_shipped_rules_are_the_ones_these_properties_exercise(response_type):
    """The generators above know these shapes; a change to fields.yaml that adds a record filter or a masked field
    they do not generate should make this fail rather than leave the properties silently weaker."""
    fields = FIELD_SETS[response_type]
    assert fields.records == ("Data", RECORDS[response_type][0])
    assert fields.account_field == "AccountId"
    masked = {rule_key(rule.path) for rule in fields.rules if rule.mask == "pan"}
    assert masked <= {"Data.Account.Account.Identification", "Data.Transaction.CardInstrument.Identification",
                      "Data.Transaction.CreditorAccount.Identification",
                      "Data.Transaction.DebtorAccount.Identification"}
    assert ROUTE_PERMISSIONS[response_type]
