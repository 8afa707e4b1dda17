"""`obgw consents list|revoke|vrp-held|vrp-resolve`: the consents as the bank's operators see them; revoking asks no
question.

Revoking stores the consent again, so it needs the audit pseudonym key that seals its customer id (audit/customers.py).

A VRP payment whose outcome is unknown (the bank timed out, the connection broke: the bank may have paid) keeps its
claim on the consent's periodic limits until it is resolved (store/vrp.py). `vrp-held` lists a consent's claims still
held; the operator asks the bank whether it paid, then `vrp-resolve CONSENT_ID CLAIM_ID --paid` settles the claim (its
amount keeps counting) or `--not-paid` releases it (its room is given back).
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from gateway.audit.customers import CustomerIds
from gateway.audit.key_files import AuditKeyError
from gateway.cli import CliError
from gateway.cli._operator import audited
from gateway.cli._settings import with_redis
from gateway.consents.control_parameters import MINOR_DIGITS
from gateway.consents.lifecycle import ConsentConflict, revoke
from gateway.consents.model import from_record
from gateway.consents.notify import outbox_notifier
from gateway.settings import add_arguments
from gateway.store.consents import ConsentStore
from gateway.store.vrp import HeldClaim, SyncVrpUsage

_CONNECTION = ("redis_url", "var_dir")


def register(subparsers) -> None:
    p = subparsers.add_parser("consents", help="list or revoke consents, resolve held VRP payments",
                              description=__doc__)
    sub = p.add_subparsers(dest="consents_command", required=True, metavar="COMMAND")
    ls = sub.add_parser("list", help="every consent: id, TPP, kind, status, created, expires (newest first)")
    ls.add_argument("--client", help="only this TPP's")
    ls.add_argument("--status", help="only consents in this status, e.g. Authorised")
    ls.set_defaults(func=list_consents)
    r = sub.add_parser("revoke", help="revoke a consent: its tokens fail from the next call; the TPP is notified")
    r.add_argument("consent_id", metavar="CONSENT_ID")
    r.set_defaults(func=revoke_consent)
    held = sub.add_parser("vrp-held", help="a VRP consent's payments of unknown outcome, still counting: claim id, "
                                           "amount, claimed at (UTC), overdue or held")
    held.add_argument("consent_id", metavar="CONSENT_ID")
    held.set_defaults(func=vrp_held)
    resolve = sub.add_parser("vrp-resolve", help="settle (--paid) or release (--not-paid) a held VRP claim, once the "
                                                 "bank has said whether it paid")
    resolve.add_argument("consent_id", metavar="CONSENT_ID")
    resolve.add_argument("claim_id", metavar="CLAIM_ID")
    outcome = resolve.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--paid", dest="paid", action="store_true",
                         help="the bank paid: the amount keeps counting in its periods, the claim is no longer held")
    outcome.add_argument("--not-paid", dest="paid", action="store_false",
                         help="the bank did not pay: the amount is given back to its periods")
    resolve.set_defaults(func=vrp_resolve)
    for parser in (ls, r, held, resolve):
        add_arguments(parser, _CONNECTION)
    add_arguments(r, ("client_ca", "audit_key", "audit_signing_key"))
    add_arguments(resolve, ("client_ca", "audit_signing_key"))


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


def vrp_held(args) -> int:
    def work(client, _settings) -> int:
        usage = SyncVrpUsage(client)
        held, now_ms = usage.claims(args.consent_id), usage.now_ms()
        consents = ConsentStore(client)
        currency = _currency(consents, consents.owner(args.consent_id), args.consent_id) if held else None
        for claim in held:
            claimed = datetime.fromtimestamp(claim.claimed_ms / 1000, timezone.utc).isoformat(timespec="seconds")
            print(f"{claim.claim_id}\t{_amount(claim, currency)}\t{claimed}\t"
                  f"{'overdue' if claim.overdue(now_ms) else 'held'}")
        return 0
    return with_redis(args, work)


def vrp_resolve(args) -> int:
    def work(client, settings) -> int:
        usage, consents = SyncVrpUsage(client), ConsentStore(client)
        claim = next((c for c in usage.claims(args.consent_id) if c.claim_id == args.claim_id), None)
        if claim is None:
            raise CliError(f"no held claim {args.claim_id} on consent {args.consent_id} (settled or released "
                           "already, or never made): nothing changed")
        owner = consents.owner(args.consent_id)
        amount = _amount(claim, _currency(consents, owner, args.consent_id))
        audited(settings, f"consents vrp-resolve {'paid' if args.paid else 'not-paid'}", client_id=owner,
                consent_id=args.consent_id)
        if not (usage.settle if args.paid else usage.release)(args.consent_id, args.claim_id):
            # resolved by someone else between the look and the change
            raise CliError(f"claim {args.claim_id} on consent {args.consent_id} was resolved meanwhile: nothing "
                           "changed")
        print(f"settled {args.claim_id}: {amount} keeps counting" if args.paid
              else f"released {args.claim_id}: {amount} given back")
        return 0
    return with_redis(args, work)


def _currency(consents: ConsentStore, owner: str | None, consent_id: str) -> str | None:
    """The currency of a VRP consent's limits (that of MaximumIndividualAmount); None if the consent is gone."""
    record = consents.get(owner, consent_id) if owner else None
    control = ((record or {}).get("terms") or {}).get("ControlParameters") or {}
    currency = (control.get("MaximumIndividualAmount") or {}).get("Currency")
    return str(currency) if currency else None


def _amount(claim: HeldClaim, currency: str | None) -> str:
    """The claim's amount in major units with its currency, or in minor units when the currency is not known."""
    if currency is None:
        return f"{claim.amount_minor} (minor units)"
    return f"{Decimal(claim.amount_minor).scaleb(-MINOR_DIGITS.get(currency, 2))} {currency}"
