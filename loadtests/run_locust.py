"""`make loadtest`: the locust load test against a stack of its own, end to end, with locust's HTML report.

    .venv/bin/python loadtests/run_locust.py [--users 24] [--spawn-rate 6] [--run-time 60s] [--tpps 4] \\
        [--workers 2] [--out loadtests/results/locust]

Starts Redis, the sandbox bank and `obgw serve --workers N` (stack.py), builds the fixture (fixture.py: TPPs by DCR,
consents through the real pages), runs locust headless on locustfile.py, and writes `<out>.html` (the report),
`<out>_stats.csv` and `<out>_failures.csv`. Then it holds the gateway to account: the audit log must hold one record
for every request locust made during the run, and `obgw audit verify` must pass. Exits non-zero if locust saw a
failure (an unpredicted answer), a record is missing, or the chain does not verify. Stops everything it started.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixture
from stack import ROOT, Stack

from gateway.consents.notify import ROUTE as NOTIFICATION_ROUTE


def locust_failures(stats_csv: Path) -> int:
    """Failures of the run, from the Aggregated row of locust's stats CSV."""
    with stats_csv.open() as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                return int(row["Failure Count"])
    raise SystemExit(f"run_locust: no Aggregated row in {stats_csv}")


def tpp_calls(records: list[dict]) -> int:
    """Records of calls made to the gateway (not the event notifications it sends TPPs itself)."""
    return sum(1 for record in records if record["route"] != NOTIFICATION_ROUTE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=24)
    parser.add_argument("--spawn-rate", type=float, default=6)
    parser.add_argument("--run-time", default="60s", help="locust's --run-time (e.g. 30s, 2m)")
    parser.add_argument("--tpps", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes")
    parser.add_argument("--out", type=Path, default=ROOT / "loadtests" / "results" / "locust",
                        help="path prefix of the report files (default loadtests/results/locust)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="obgw-locust-") as work, Stack(Path(work)) as stack:
        gateway = stack.gateway(args.workers)
        try:
            fixture_dir = Path(work) / "fixture"
            fixture.build(stack.base, stack.pki, fixture_dir, args.tpps, reads=2, unattended=3, revocable=2,
                          payments=3)
            time.sleep(1.1)  # audit stream ids are in milliseconds: the run's window starts after the fixture's
            since = datetime.now(timezone.utc)
            locust = subprocess.run(
                [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"), "--headless",
                 "--users", str(args.users), "--spawn-rate", str(args.spawn_rate), "--run-time", args.run_time,
                 "--stop-timeout", "10", "--html", f"{args.out}.html", "--csv", str(args.out),
                 "--only-summary", "--host", stack.base],
                env={**stack.env(args.workers), "LOADTEST_FIXTURE": str(fixture_dir / "fixture.json")}, cwd=ROOT,
                timeout=3600)
            time.sleep(1.1)
            records = tpp_calls(stack.audit_records(since, datetime.now(timezone.utc)))
            verify = subprocess.run([sys.executable, "-m", "gateway", "audit", "verify"], env=stack.env(1),
                                    capture_output=True, text=True, timeout=600)
        finally:
            gateway.stop()
        if not (fixture_dir / "run.json").exists():
            print(f"run_locust: locust stopped (exit {locust.returncode}) before writing its summary", file=sys.stderr)
            return 1
        run = json.loads((fixture_dir / "run.json").read_text())
    requests, failures = run["requests"], locust_failures(Path(f"{args.out}_stats.csv"))
    print(f"\nlocust: {requests} requests, {failures} failures; predicted refusals: {run['predicted_refusals']}")
    print(f"audit: {records} records for the run's {requests} requests (missing: {max(0, requests - records)}); "
          f"verify: {verify.stdout.strip() or verify.stderr.strip()}")
    print(f"report: {args.out}.html")
    ok = locust.returncode == 0 and failures == 0 and records == requests and verify.returncode == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
