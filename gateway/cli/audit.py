"""`obgw audit tail|search|trace|verify|export|checkpoints|anomalies|archive`: the security team's view of the audit
log.

Records older than OBGW_AUDIT_LIVE_SECONDS are archived to signed segment files and trimmed from Redis
(`audit/archive.py`): `tail`, `search`, `export` and `verify` read the archive and the live stream as one log, and
`archive` runs one archiving step now (the gateway runs one every OBGW_AUDIT_ARCHIVE_SECONDS).

A customer is named in records only by their audit pseudonym (`subject`): `search --subject` follows one without
knowing who they are; `search --customer ID` re-identifies, which needs the pseudonym key file and is itself
recorded in the log (who ran it, for which pseudonym) before anything is shown.

`trace FILE` says which TPPs and consents received the records found in a file (a leak), by the keyed fingerprints
of the delivered records' identities the log holds (audit/trace.py); it needs the pseudonym key file too, and is
recorded in the log (who ran it) before anything is shown.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import datetime, timezone
from pathlib import Path

import orjson

from gateway.audit import query
from gateway.audit.activity import activity, anomalies, window_start
from gateway.audit.archive import ArchivedLog, ArchiveError, Archiver
from gateway.audit.chain import iter_lines, read_checkpoints, verify
from gateway.audit.fingerprints import fingerprint_key
from gateway.audit.key_files import (
    AuditKeyError,
    checkpoint_signed_by,
    key_id,
    load_pseudonym_key,
    load_public_key,
    load_signing_key,
)
from gateway.audit.operator import record_operator_action
from gateway.audit.trace import TraceInputError, find_deliveries, read_documents, records_in
from gateway.cli import CliError
from gateway.cli._operator import audited
from gateway.cli._settings import audit_log, policy_from, settings_from, with_redis
from gateway.crypto import pseudonym
from gateway.settings import add_arguments
from gateway.store.audit import ArchiveConflict

_CONNECTION = ("redis_url", "var_dir", "audit_archive_dir")
_KEYS = ("client_ca", "audit_key", "audit_signing_key")
REIDENTIFIED = "audit.reidentified"  # the reason of the record a re-identifying search leaves


def register(subparsers) -> None:
    p = subparsers.add_parser("audit", help="read, search, export and verify the audit log", description=__doc__)
    sub = p.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")

    t = sub.add_parser("tail", help="the latest records")
    t.add_argument("-n", "--lines", type=int, default=20, help="how many (default 20)")
    t.add_argument("-f", "--follow", action="store_true", help="keep printing new records (Ctrl-C stops)")
    t.add_argument("--json", action="store_true", help="one JSON object a line")
    t.set_defaults(func=tail)

    s = sub.add_parser("search", help="records matching every filter given, oldest first")
    s.add_argument("--client", help="client id")
    s.add_argument("--consent", help="consent id")
    s.add_argument("--subject", help="a customer's audit pseudonym (as records name them)")
    s.add_argument("--customer", help="the bank's customer id: re-identifies (needs the audit key file; recorded)")
    s.add_argument("--since", type=_moment, help="ISO 8601 date-time (UTC if no zone)")
    s.add_argument("--until", type=_moment, help="ISO 8601 date-time (UTC if no zone)")
    s.add_argument("--decision", choices=("allow", "refuse", "error"))
    s.add_argument("--reason", help="refusal reason id, e.g. identity.no_certificate")
    s.add_argument("--status", type=int, help="HTTP status")
    s.add_argument("--json", action="store_true", help="one JSON object a line")
    s.set_defaults(func=search)

    tr = sub.add_parser("trace", help="which TPPs and consents received each record in FILE (UK OB answers or "
                                      "records, as JSON or JSON Lines), matched by the record's identity, not its "
                                      "content")
    tr.add_argument("file", type=Path, metavar="FILE")
    tr.add_argument("--since", type=_moment, help="only deliveries since (ISO 8601)")
    tr.add_argument("--until", type=_moment, help="only deliveries until (ISO 8601)")
    tr.add_argument("--json", action="store_true", help="one JSON object a record: record, kind, identity, "
                                                        "deliveries [{client_id, consent_id, ts, interaction_id}]")
    tr.set_defaults(func=trace)

    v = sub.add_parser("verify", help="check the hash chains over the archive and the live log as one, and the "
                                      "archive manifest's signatures; exit 0 if intact, 1 naming the first bad "
                                      "record, segment or manifest line")
    v.add_argument("--file", type=Path, help="verify an exported JSONL file instead of the live log")
    v.add_argument("--checkpoints", type=Path,
                   help="checkpoint file anchoring the chain heads (default VAR_DIR/audit/checkpoints.jsonl), "
                        "e.g. one exported to an external store")
    v.add_argument("--public-key", type=Path,
                   help="Ed25519 public key (PEM) the checkpoints must be signed with (default: the signing key's)")
    v.set_defaults(func=run_verify)

    a = sub.add_parser("anomalies", help="each TPP's latest hour against its norm: surges of unattended calls or "
                                         "refusals, calls from a new certificate (as the admin page shows)")
    a.add_argument("--hours", type=int, default=24, help="the window, ending now (default 24)")
    a.add_argument("--json", action="store_true", help="one JSON object a line")
    a.set_defaults(func=report_anomalies)

    c = sub.add_parser("checkpoints", help="the signed checkpoints of the chain heads, as JSONL for an external store")
    c.add_argument("--since", type=_moment, help="only checkpoints written since (ISO 8601)")
    c.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    c.set_defaults(func=export_checkpoints)

    e = sub.add_parser("export", help="write records as JSONL with their chain fields, verifiable with --file")
    e.add_argument("--since", type=_moment)
    e.add_argument("--until", type=_moment)
    e.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    e.set_defaults(func=export)

    r = sub.add_parser("archive", help="archive the records older than the live window to signed segment files "
                                       "and trim them from Redis, now (the gateway does it periodically)")
    r.add_argument("--all", action="store_true", help="archive every record, however recent (live window 0)")
    r.set_defaults(func=run_archive)

    for parser in (t, s, tr, v, e, a, r):
        add_arguments(parser, _CONNECTION)
    add_arguments(tr, ("audit_key", "policy_dir"))
    for parser in (s, v, r):
        add_arguments(parser, _KEYS)
    add_arguments(r, ("audit_live_seconds", "audit_archive_keep_days"))
    add_arguments(c, ("var_dir",))


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _with_log(args, work):
    """Run `work(log, settings)` with the audit log of the Redis `with_redis` finds (`audit_log`)."""
    return with_redis(args, lambda client, settings: work(audit_log(client, settings), settings),
                      "read the audit log from Redis")


def _line(record: dict) -> str:
    return (f"{record['ts']}  {record['status']:>3} {record['decision']:<6} {record['method']:<6} "
            f"{record['route'] or '-'}  client={record['client_id'] or '-'} consent={record['consent_id'] or '-'} "
            f"reason={record['reason'] or '-'} {record['latency_ms']}ms id={record['interaction_id']}")


def _print(record: dict, as_json: bool) -> None:
    sys.stdout.write(orjson.dumps(record).decode() + "\n" if as_json else _line(record) + "\n")


def tail(args) -> int:
    def work(log, _settings):
        for record in log.tail(args.lines):
            _print(record, args.json)
        sys.stdout.flush()
        if args.follow:
            for record in log.follow():
                _print(record, args.json)
                sys.stdout.flush()
        return 0
    return _with_log(args, work)


def search(args) -> int:
    if args.subject and args.customer:
        raise CliError("give --subject or --customer, not both")

    def work(log, settings):
        subject = args.subject
        if args.customer:
            try:
                subject = pseudonym(load_pseudonym_key(settings.audit_key_file), args.customer)
                record_operator_action(settings, route="obgw audit search --customer", reason=REIDENTIFIED,
                                       subject=subject)
            except AuditKeyError as exc:
                raise CliError(str(exc)) from None
            except Exception as exc:  # the lookup could not be recorded: it does not happen
                raise CliError(f"cannot record the re-identifying search, so it was not run: {exc}") from None
        filters = {"decision": args.decision, "reason": args.reason, "status": args.status, "subject": subject}
        for record in query.search(log, client_id=args.client, consent_id=args.consent, since=args.since,
                                   until=args.until, filters=filters):
            _print(record, args.json)
        return 0
    return _with_log(args, work)


def trace(args) -> int:
    settings = settings_from(args)
    policy = policy_from(args)
    try:
        key = fingerprint_key(load_pseudonym_key(settings.audit_key_file))
        found = records_in(read_documents(args.file), (f.trace for f in policy.fields.values() if f.trace), key)
    except (AuditKeyError, TraceInputError) as exc:
        raise CliError(str(exc)) from None
    if not found:
        raise CliError(f"{args.file}: no UK Open Banking record with an identity the policy traces "
                       f"({', '.join(sorted({f.trace.kind for f in policy.fields.values() if f.trace}))})")

    def work(log, resolved):
        audited(resolved, "audit trace")  # who looked up where records went, before anything is shown
        find_deliveries(log, found, args.since, args.until)
        for record in found:
            if args.json:
                sys.stdout.write(orjson.dumps(record.as_json()).decode() + "\n")
                continue
            print(f"{'/'.join(record.kinds)} {record.record_id}: " + (
                f"received {len(record.deliveries)} time(s)" if record.deliveries else "received by no TPP"))
            for delivery in record.deliveries:
                print(f"  {delivery['ts']}  client={delivery['client_id']} consent={delivery['consent_id']} "
                      f"id={delivery['interaction_id']}")
        return 0
    return _with_log(args, work)


def _report(result) -> int:
    if result.breach is None:
        print(f"audit log intact: {result.records} records in {result.chains} chains")
        return 0
    print(f"audit log broken at {result.breach} ({result.records} records read)", file=sys.stderr)
    return 1


def run_verify(args) -> int:
    if args.file:
        try:
            with args.file.open("rb") as f:
                return _report(verify(iter_lines(f), heads=None, partial=True))
        except (OSError, orjson.JSONDecodeError) as exc:
            raise CliError(f"{args.file}: {exc}") from None

    if args.checkpoints and not args.checkpoints.is_file():  # a file named must be read, never silently skipped
        raise CliError(f"{args.checkpoints}: no such checkpoint file")

    def work(log, settings):
        checkpoints = read_checkpoints(args.checkpoints or settings.var_dir / "audit" / "checkpoints.jsonl")
        signed = [c for c in checkpoints if "sig" in c]
        try:  # the key is needed only to check signatures
            public = load_public_key(args.public_key or settings.audit_signing_key_file) \
                if signed or args.public_key else None
        except AuditKeyError as exc:
            raise CliError(str(exc)) from None
        # A signed checkpoint must verify: one whose signature fails was forged or altered. Unsigned ones (written
        # before checkpoints were signed) still anchor the chains; they are counted.
        for number, checkpoint in enumerate(checkpoints, start=1):
            if "sig" in checkpoint and not checkpoint_signed_by(public, checkpoint):
                print(f"audit checkpoint {number} (chain {checkpoint.get('chain')}, seq {checkpoint.get('seq')}) "
                      f"is not signed by the audit key {key_id(public)}", file=sys.stderr)
                return 1
        try:
            archive_key = public or (load_public_key(settings.audit_signing_key_file)
                                     if any(m.entries for m in log.manifests) else None)
        except AuditKeyError as exc:
            raise CliError(str(exc)) from None
        archive = log.check(archive_key)
        if archive.breach is not None:
            print(f"audit log broken at {archive.breach}", file=sys.stderr)
            return 1
        heads = log.heads()  # read before the records: a record appended meanwhile is past its head
        result = verify(log.records(), heads=heads, checkpoints=checkpoints, base=archive.base)
        if result.breach is not None and (segment := _segment_named(log, result.breach.where)):
            result = dataclasses.replace(result, breach=dataclasses.replace(
                result.breach, where=f"{result.breach.where} in archive segment {segment}"))
        code = _report(result)
        if code == 0 and any(m.entries for m in log.manifests):
            print(f"archive: {archive.segments} segments verified against the manifest signed by "
                  f"{key_id(archive_key) if archive_key else '-'}, {archive.deleted} deleted by retention; "
                  f"live from {log.manifest.last_id}")
        if code == 0 and checkpoints:
            signer = f" by {key_id(public)}" if public else ""
            legacy = sum(1 for c in signed if "heads" not in c)
            print(f"checkpoints: {len(signed)} signed{signer}, {len(checkpoints) - len(signed)} unsigned; "
                  f"{legacy} of the signed name their own chain only (legacy format, or Redis was unreadable)")
        return code
    return _with_log(args, work)


def _segment_named(log: ArchivedLog, where: str) -> str | None:
    """The archive segment holding the record a breach names ("record <stream id> (...)"), if archived."""
    word, _, rest = where.partition(" ")
    return log.segment_of(rest.split(" ")[0]) if word == "record" and rest else None


def run_archive(args) -> int:
    def work(client, settings):
        try:
            archiver = Archiver(client, settings.audit_archive_path, load_signing_key(settings.audit_signing_key_file),
                                live_seconds=0 if args.all else settings.audit_live_seconds,
                                keep_days=settings.audit_archive_keep_days)
            if not args.all and settings.audit_live_seconds == 0:
                print("OBGW_AUDIT_LIVE_SECONDS is 0: records stay in Redis; nothing archived (--all archives all)")
                return 0
            report = archiver.run()
        except (AuditKeyError, ArchiveError, ArchiveConflict, OSError) as exc:
            raise CliError(f"audit archive: {exc}") from None
        if report is None:
            print("another archiver is at work (a gateway worker holds the lease); try again shortly")
            return 0
        print(f"audit archive in {settings.audit_archive_path}: {report}")
        return 0
    return with_redis(args, work, "archive the audit log")


def report_anomalies(args) -> int:
    if args.hours < 2:
        raise CliError("--hours must be at least 2: the latest hour is compared with the ones before")

    def work(log, _settings):
        start, end = window_start(None, args.hours)
        tpps = activity(query.search(log, since=start, until=end), end, args.hours)
        for flag in anomalies(tpps):
            sys.stdout.write(orjson.dumps(dataclasses.asdict(flag)).decode() + "\n" if args.json
                             else f"{flag.client_id}: {flag.kind}: {flag.detail}\n")
        if not args.json:
            for tpp in sorted(tpps.values(), key=lambda t: -t.total):
                print(f"  {tpp.client_id}: {tpp.total} calls, {sum(tpp.refusals)} refused, "
                      f"{sum(tpp.rate_limited)} rate limited, {sum(tpp.unattended)} unattended in {args.hours} h")
        return 0
    return _with_log(args, work)


def export_checkpoints(args) -> int:
    """The checkpoint file's signed entries, for a store outside this machine to keep (verify reads them back)."""
    settings = settings_from(args)
    out = args.output.open("wb") if args.output else sys.stdout.buffer
    try:
        for checkpoint in read_checkpoints(settings.var_dir / "audit" / "checkpoints.jsonl"):
            if "sig" in checkpoint and (args.since is None or _moment(str(checkpoint["ts"])) >= args.since):
                out.write(orjson.dumps(checkpoint) + b"\n")
    finally:
        if args.output:
            out.close()
    return 0


def export(args) -> int:
    def work(log, _settings):
        out = args.output.open("wb") if args.output else sys.stdout.buffer
        try:
            for _, record in log.records(query.stream_id_at(args.since) if args.since else "-",
                                         query.stream_id_at(args.until) if args.until else "+"):
                out.write(orjson.dumps(record) + b"\n")
        finally:
            if args.output:
                out.close()
        return 0
    return _with_log(args, work)
