"""`obgw clients set-plan` and `obgw usage report|reconcile` against a real Redis: their refusals, and a statement of a
month without calls (issue 20; the flows with calls are in tests/e2e/test_usage.py)."""
from __future__ import annotations

import json

from gateway.cli import main
from gateway.store import names


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_set_plan_and_reports(capsys, redis_url, redis_client, pki):
    where = ("--redis-url", redis_url)
    assert run(capsys, "clients", "add", "tpp-demo", "--from-json", str(pki / "tpp-demo.json"), "--replace",
               *where)[0] == 0
    code, _, err = run(capsys, "clients", "set-plan", "tpp-demo", "gold", *where)
    assert code == 2 and "unknown plan 'gold'" in err and "standard" in err
    code, _, err = run(capsys, "clients", "set-plan", "tpp-nobody", "trial", *where)
    assert code == 2 and "no client tpp-nobody" in err
    code, out, _ = run(capsys, "clients", "set-plan", "tpp-demo", "trial", *where)
    assert code == 0 and "tpp-demo is on plan trial from its next call" in out
    assert redis_client.get(names.client_plan("tpp-demo")) == b"trial"

    code, out, _ = run(capsys, "usage", "report", "--client", "tpp-demo", "--month", "2031-05", *where)
    report = json.loads(out)
    assert code == 0 and report["plan"] == "trial" and report["total"] == "0" and report["month"] == "2031-05"
    assert {line["product"] for line in report["lines"]} >= {"accounts", "payments", "vrp", "funds-confirmation"}
    assert all(line["calls"] == line["billable_calls"] == 0 for line in report["lines"])
    assert run(capsys, "usage", "report", "--client", "tpp-demo", "--month", "2031-5", *where)[0] == 2
    assert run(capsys, "usage", "report", "--client", "tpp-nobody", "--month", "2031-05", *where)[0] == 2
    code, out, _ = run(capsys, "usage", "report", "--client", "tpp-demo", "--month", "2031-05", "--format", "csv",
                       *where)
    assert code == 0 and out.splitlines()[-1].endswith(",total,,,,,,0")
    code, out, _ = run(capsys, "usage", "reconcile", "--month", "2031-05", *where)
    assert code == 0 and "2031-05: agree" in out
    redis_client.hincrby(names.usage("tpp-demo", "2031-05"), "vrp:calls", 1)  # a call the audit log lacks
    try:
        code, out, _ = run(capsys, "usage", "reconcile", "--month", "2031-05", *where)
        assert code == 1 and "tpp-demo vrp calls: metered 1, audit log 0" in out
    finally:
        redis_client.delete(names.usage("tpp-demo", "2031-05"), names.client_plan("tpp-demo"))
