"""`obgw consents list|revoke`: the consents as the bank's operators see them; revoking asks no question.

Revoking stores the consent again, so it needs the audit pseudonym key that seals its customer id (audit/customers.py).
"""
from __future__ import annotations

from gateway.audit.customers import CustomerIds
from gateway.audit.key_files import AuditKeyError
from gateway.cli import CliError
from gateway.cli._operator import audited
from gateway.cli._settings import with_redis
from gateway.consents.lifecycle import ConsentConflict, revoke
from gateway.consents.model import from_record
from gateway.consents.notify import outbox_notifier
from gateway.settings import add_arguments
from gateway.store.consents import ConsentStore

_CONNECTION = ("redis_url", "var_dir")


def register(subparsers) -> None:
    p = subparsers.add_parser("consents", help="list or revoke consents", description=__doc__)
    sub = p.add_subparsers(dest="consents_command", required=True, metavar="COMMAND")
    ls = sub.add_parser("list", help="every consent: id, TPP, kind, status, created, expires (newest first)")
    ls.add_argument("--client", help="only this TPP's")
    ls.add_argument("--status", help="only consents in this status, e.g. Authorised")
    ls.set_defaults(func=list_consents)
    r = sub.add_parser("revoke", help="revoke a consent: its tokens fail from the next call; the TPP is notified")
    r.add_argument("consent_id", metavar="CONSENT_ID")
    r.set_defaults(func=revoke_consent)
    for parser in (ls, r):
        add_arguments(parser, _CONNECTION)
    add_arguments(r, ("client_ca", "audit_key", "audit_signing_key"))


def list_consents(args) -> int:
    def work(client, _settings) -> int:
        consents = sorted((from_record(r) for r in ConsentStore(client).all()), key=lambda c: c.created, reverse=True)
        for c in consents:
            status = c.shown_status
            if (args.client and c.client_id != args.client) or (args.status and status != args.status):
                continue
            print(f"{c.consent_id}\t{c.client_id}\t{c.kind}\t{status}\t{c.created}\t{c.expires or '-'}")
        return 0
    return with_redis(args, work)


def revoke_consent(args) -> int:
    def work(client, settings) -> int:
        try:
            store = ConsentStore(client, CustomerIds.from_file(settings.audit_key_file))
        except AuditKeyError as exc:
            raise CliError(str(exc)) from None
        owner = store.owner(args.consent_id)
        record = store.get(owner, args.consent_id) if owner else None
        if record is None:
            raise CliError(f"no consent {args.consent_id}")
        audited(settings, "consents revoke", client_id=owner, consent_id=args.consent_id)
        try:
            revoke(store, from_record(record), outbox_notifier(client))
        except ConsentConflict as conflict:
            raise CliError(f"consent {args.consent_id} is {conflict.found}: it cannot be revoked") from None
        print(f"revoked {args.consent_id} (TPP {owner} will be notified)")
        return 0
    return with_redis(args, work)
