"""`obgw usage report|reconcile`: what each TPP used of each API product in a UTC month, priced on its plan
(policies/plans.yaml), and the proof that the meter and the audit log agree.

`report --client ID --month YYYY-MM [--format json|csv|html]` prints the TPP's statement: per product, calls,
billable calls (answered by the bank with 2xx), refused calls, free allowance used, unit price and amount; the total;
the plan; when it was generated. Money is exact decimals (strings in JSON).

`reconcile --month YYYY-MM` counts the month's audit records per TPP, product and outcome (every call; billable;
refused, per reason) and compares them with the meter: exit 0 when they agree, 1 (each difference on stdout)
otherwise. It reads the audit archive and the live stream as one log (as `obgw audit search` does), so a month whose
records were already archived (`obgw audit archive`) still reconciles.
"""
from __future__ import annotations

import json
from datetime import timedelta

from gateway.audit.query import search
from gateway.cli import CliError
from gateway.cli._settings import audit_log, policy_from, with_redis
from gateway.settings import add_arguments
from gateway.store.clients import ClientStore
from gateway.store.usage import usage
from gateway.usage import (
    FORMATS,
    audited_counts,
    counts_by_product,
    differences,
    month_bounds,
    products_by_route,
    render,
    statement,
)

_CONNECTION = ("redis_url", "var_dir", "policy_dir")
# An audit record is appended after its call: the stream id of a call of the month's last moments is a little later.
_LATE_APPEND = timedelta(hours=1)


def register(subparsers) -> None:
    p = subparsers.add_parser("usage", help="metered usage per TPP and API product: statements, reconciliation "
                                            "with the audit log", description=__doc__)
    sub = p.add_subparsers(dest="usage_command", required=True, metavar="COMMAND")
    r = sub.add_parser("report", help="a TPP's statement for one UTC month (json, csv or html)")
    r.add_argument("--client", required=True, metavar="ID", help="the TPP's client id")
    r.add_argument("--month", required=True, metavar="YYYY-MM", help="the UTC month")
    r.add_argument("--format", choices=FORMATS, default="json", help="json (default), csv or html")
    r.set_defaults(func=report)
    c = sub.add_parser("reconcile", help="compare the meter with the audit log for one UTC month: exit 0 when "
                                         "they agree, 1 on any difference")
    c.add_argument("--month", required=True, metavar="YYYY-MM", help="the UTC month")
    c.set_defaults(func=reconcile)
    for parser in sub.choices.values():
        add_arguments(parser, _CONNECTION)
    add_arguments(c, ("audit_archive_dir",))


def _month(args) -> str:
    try:
        month_bounds(args.month)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return str(args.month)


def report(args) -> int:
    month, plans = _month(args), policy_from(args).plans

    def work(client, _settings) -> int:
        if ClientStore(client).get(args.client) is None:
            raise CliError(f"no client {args.client}")
        raw, assigned = usage(client, args.client, month)
        document = statement(plans, args.client, month, raw, assigned)
        print(json.dumps(document, indent=2) if args.format == "json" else render(document, args.format), end=""
              if args.format != "json" else "\n")
        return 0
    return with_redis(args, work, "read the usage")


def reconcile(args) -> int:
    month, policy = _month(args), policy_from(args)
    start, end = month_bounds(month)

    def work(client, settings) -> int:
        records = search(audit_log(client, settings), since=start, until=end + _LATE_APPEND)
        audited = audited_counts(records, products_by_route(policy), month)
        clients = {document["client_id"] for document in ClientStore(client).all()} | {c for c, _ in audited}
        metered = {}
        for client_id in sorted(clients):
            for product, counts in counts_by_product(usage(client, client_id, month)[0])[0].items():
                metered[(client_id, product)] = counts
        found = differences(metered, audited)
        for line in found:
            print(line)
        calls = sum(counts["calls"] for counts in metered.values())
        print(f"{month}: {'agree' if not found else f'{len(found)} differences'} ({calls} metered calls, "
              f"{sum(c['calls'] for c in audited.values())} audited)")
        return 1 if found else 0
    return with_redis(args, work, "read the usage and the audit log")

