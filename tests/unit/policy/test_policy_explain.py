"""`obgw policy explain --permissions ...` through the real command line (`gateway.cli.main`), on the shipped policy."""
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.policy import load_policy
from gateway.policy.fields import exposure

ROOT = Path(__file__).parents[3]
POLICIES = ROOT / "policies"
AISP = "/open-banking/v3.1/aisp"


def explain(capsys, *argv: str) -> list[str]:
    assert main(["policy", "explain", *argv]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out.splitlines()


def section(lines: list[str], head: str) -> list[str]:
    """The lines of one endpoint's block: its head line up to the next blank line."""
    start = next(index for index, line in enumerate(lines) if line.startswith(head))
    end = next((index for index in range(start, len(lines)) if not lines[index]), len(lines))
    return lines[start:end]


def test_explain_prints_what_each_endpoint_exposes_and_hides(capsys):
    lines = explain(capsys, str(POLICIES), "--permissions", "ReadAccountsBasic,ReadBalances")
    assert lines[0] == "A consent with ReadAccountsBasic, ReadBalances:"

    accounts = section(lines, f"GET {AISP}/accounts (")
    assert accounts[0] == f"GET {AISP}/accounts (OBReadAccount6)"
    assert "  exposes  Data.Account[].AccountId" in accounts
    assert "  exposes  Data.Account[].Nickname" in accounts
    assert "  exposes  Links.Self" in accounts
    assert "  hides    Data.Account[].Account" in accounts
    assert "  hides    Data.Account[].Account[].Identification" in accounts
    assert "  hides    Data.Account[].Servicer" in accounts
    assert "  records  only the accounts the customer selected" in accounts
    assert accounts[-1] == "  drops    anything else the bank returns"
    assert not [line for line in accounts if line.startswith("  masks")]

    single = section(lines, f"GET {AISP}/accounts/{{AccountId}} (")
    assert single[1:] == accounts[1:]

    balances = section(lines, f"GET {AISP}/accounts/{{AccountId}}/balances (")
    assert balances[0] == f"GET {AISP}/accounts/{{AccountId}}/balances (OBReadBalance1)"
    assert "  exposes  Data.Balance[].Amount" in balances
    assert not [line for line in balances if line.startswith(("  hides", "  masks"))]


def test_explain_says_the_transactions_endpoint_is_refused_and_what_it_needs(capsys):
    lines = explain(capsys, str(POLICIES), "--permissions", "ReadAccountsBasic,ReadBalances")
    assert (f"GET {AISP}/accounts/{{AccountId}}/transactions: refused "
            "(needs one of ReadTransactionsBasic, ReadTransactionsDetail)") in lines
    assert not [line for line in lines if "Data.Transaction" in line]


def test_explain_lists_only_routes_that_read_consented_data(capsys):
    lines = explain(capsys, str(POLICIES), "--permissions", "ReadAccountsBasic,ReadBalances")
    heads = [line for line in lines if line.startswith(("GET ", "POST "))]
    assert len(heads) == 26  # every AIS route, answered or refused; payments and funds checks need no permission
    assert all(head.startswith(f"GET {AISP}/") for head in heads)
    assert not [line for line in lines if "/pisp/" in line or "/cbpii/" in line]


def test_explain_says_a_file_is_passed_unmodified_and_in_which_media_types(capsys):
    lines = explain(capsys, str(POLICIES), "--permissions", "ReadStatementsDetail")
    assert section(lines, f"GET {AISP}/accounts/{{AccountId}}/statements/{{StatementId}}/file") == [
        f"GET {AISP}/accounts/{{AccountId}}/statements/{{StatementId}}/file (File)",
        "  passes   the bank's file unmodified (application/json, application/pdf)"]


def test_explain_says_the_file_needs_detail(capsys):
    lines = explain(capsys, str(POLICIES), "--permissions", "ReadStatementsBasic")
    assert (f"GET {AISP}/accounts/{{AccountId}}/statements/{{StatementId}}/file: refused "
            "(needs one of ReadStatementsDetail)") in lines


def test_explain_says_a_statement_must_lie_wholly_inside_the_window(capsys):
    lines = explain(capsys, str(POLICIES), "--permissions", "ReadStatementsBasic")
    statements = section(lines, f"GET {AISP}/accounts/{{AccountId}}/statements (")
    assert statements[0] == f"GET {AISP}/accounts/{{AccountId}}/statements (OBReadStatement2)"
    assert ("  records  only StartDateTime and EndDateTime within the consent's "
            "TransactionFromDateTime..ToDateTime") in statements
    assert "  hides    Data.Statement[].StatementAmount" in statements  # Detail only
    assert "  exposes  Links.Next" in statements


def test_explain_reads_the_policy_directory_by_default(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert explain(capsys, "--permissions", "ReadAccountsBasic,ReadBalances") == explain(
        capsys, str(POLICIES), "--permissions", "ReadAccountsBasic,ReadBalances")


def test_explain_prints_exactly_what_exposure_computes(capsys):
    permissions = ("ReadAccountsDetail", "ReadTransactionsBasic", "ReadTransactionsCredits")
    lines = explain(capsys, str(POLICIES), "--permissions", ",".join(permissions))
    policy = load_policy(POLICIES)
    for route in policy.routes:
        if not route.permissions or not route.permissions & set(permissions):
            continue
        assert route.fields.media_types is None, route.id  # a file is printed otherwise (see above)
        block = section(lines, f"{route.method} {route.path} (")
        seen = exposure(route.fields, permissions)
        assert block[1:] == (
            [f"  exposes  {path}" for path in seen.exposed]
            + [f"  masks    {path} (card numbers: last 4 digits; ReadPAN shows them)" for path in seen.masked]
            + [f"  hides    {path}" for path in seen.hidden]
            + [f"  records  {note}" for note in seen.records]
            + ["  drops    anything else the bank returns"])
    transactions = section(lines, f"GET {AISP}/accounts/{{AccountId}}/transactions (")
    assert ("  masks    Data.Transaction[].CardInstrument.Identification (card numbers: last 4 digits; ReadPAN shows "
            "them)") in transactions
    assert "  hides    Data.Transaction[].TransactionInformation" in transactions
    assert "  records  Credit records (CreditDebitIndicator)" in transactions
    accounts = section(lines, f"GET {AISP}/accounts (")
    assert ("  masks    Data.Account[].Account[].Identification (card numbers: last 4 digits; ReadPAN shows "
            "them)") in accounts


@pytest.mark.parametrize(("codes", "named"), [
    ("ReadAccountsBasic,ReadBalance", "ReadBalance"),
    ("ReadAcountsBasic", "ReadAcountsBasic"),
    ("MakePayments,ReadBalances", "MakePayments"),
])
def test_an_unknown_permission_code_exits_2_naming_it(capsys, codes, named):
    with pytest.raises(SystemExit) as exited:
        main(["policy", "explain", str(POLICIES), "--permissions", codes])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--permissions" in captured.err
    assert named in captured.err
    assert "not UK Open Banking v3.1.11 permission codes" in captured.err
    for known in set(codes.split(",")) - {named}:
        assert known not in captured.err.split("permission codes:", 1)[1]


def test_several_unknown_codes_are_all_named(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["policy", "explain", str(POLICIES), "--permissions", "Foo,ReadBalances,Bar"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Foo" in err and "Bar" in err
