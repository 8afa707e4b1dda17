import argparse
import os
from pathlib import Path

import pytest

from gateway.cli.policy import register

ROOT = Path(__file__).parents[3]
GOOD = ROOT / "tests" / "fixtures" / "policies" / "good"
BAD = ROOT / "tests" / "fixtures" / "policies" / "bad"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("OBGW_") or name == "REDIS_URL":
            monkeypatch.delenv(name)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="obgw")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["policy", *argv])
    return args.func(args)


def test_check_reports_ok_for_the_shipped_policy_by_default(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert run("check") == 0
    assert capsys.readouterr().out == "ok: 56 routes, 2 services in policies\n"


def test_check_reads_the_directory_setting_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("OBGW_POLICY_DIR", str(GOOD))
    assert run("check") == 0
    assert capsys.readouterr().out == f"ok: 10 routes, 2 services in {GOOD}\n"


def test_check_prints_every_problem_and_the_count_and_exits_2(capsys):
    directory = BAD / "several_errors"
    assert run("check", str(directory)) == 2
    expected = (directory / "expect.txt").read_text().replace("{dir}", str(directory))
    assert capsys.readouterr().out == expected


def test_check_applies_the_service_url_overrides_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("OBGW_SERVICE_LEDGER_URL", "http://127.0.0.1:9000")
    assert run("check", str(GOOD)) == 2
    assert capsys.readouterr().out == (
        f"{GOOD / 'services.yaml'}:4:1: services: service URL override for unknown service 'ledger' "
        "(services.yaml defines: core, payments)\n1 error in 1 file\n")


def test_explain_prints_one_line_per_route(capsys):
    assert run("explain", str(GOOD)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["METHOD", "PATH", "ROUTE", "SERVICE", "→", "UPSTREAM", "SCOPE", "PERMISSIONS",
                                "(any", "of)", "TIMEOUT"]
    assert lines[1].split() == [
        "GET", "/open-banking/v3.1/aisp/accounts/{AccountId}", "ais.accounts.get", "core", "→",
        "https://core.bank.example:8443/api/v2/accounts/{AccountId}", "accounts", "ReadAccountsBasic,",
        "ReadAccountsDetail", "1500", "ms"]
    assert len(lines) == 1 + 10  # the header, then one line per route


def test_explain_refuses_a_bad_policy_with_its_problems(capsys):
    assert run("explain", str(BAD / "unknown_permission")) == 2
    assert capsys.readouterr().out.endswith("2 errors in 1 file\n")
