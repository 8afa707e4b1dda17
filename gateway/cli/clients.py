"""`obgw clients add|add-cert|list|show|set-tier|set-plan|disable|enable`: the TPP registry (what the authorization
server reads), each client's certificates, and each client's rate-limit tier, price plan and usage."""
from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from gateway.cli import CliError
from gateway.cli._operator import audited
from gateway.cli._settings import policy_from, settings_from, with_redis
from gateway.consents.notify import notification_url_allowed
from gateway.crypto import x5t_s256
from gateway.oauth.models import AUTH_METHODS, ROLES, Client, common_name
from gateway.pki import public_jwk
from gateway.settings import add_arguments
from gateway.store.clients import ClientStore

_CONNECTION = ("redis_url", "var_dir", "policy_dir")
_AUDITED = ("add", "add-cert", "set-tier", "set-plan", "disable", "enable")  # the commands that change a client
_AUDIT_KEYS = ("client_ca", "audit_signing_key")


def register(subparsers) -> None:
    p = subparsers.add_parser("clients", help="register, list, show and disable TPP clients", description=__doc__)
    sub = p.add_subparsers(dest="clients_command", required=True, metavar="COMMAND")

    a = sub.add_parser("add", help="register a TPP client")
    a.add_argument("client_id", metavar="CLIENT_ID")
    a.add_argument("--from-json", type=Path, metavar="FILE",
                   help="a certs/dev/<name>.json file: its cert, redirect_uri and private_jwk (public part registered)")
    a.add_argument("--cert", type=Path, help="the TPP's transport certificate (PEM); its thumbprint is registered")
    a.add_argument("--redirect-uri", action="append", default=[], help="a redirect URI (repeatable)")
    a.add_argument("--jwks", type=Path, help="JWKS (or one JWK) for private_key_jwt")
    a.add_argument("--role", action="append", choices=ROLES,
                   help="AISP, PISP or CBPII (repeatable; default all three)")
    a.add_argument("--auth-method", action="append", choices=AUTH_METHODS,
                   help="tls_client_auth and/or private_key_jwt (default: both when a JWKS is given)")
    a.add_argument("--name", help="the name customers see on the consent page (default CLIENT_ID)")
    a.add_argument("--notification-url", help="the TPP's event-notification endpoint (https; http only to loopback): "
                                              "it is told when a consent is revoked")
    a.add_argument("--dpop", action="store_true", help="bind its access tokens to a DPoP key (RFC 9449) instead of "
                   "its certificate, which still authenticates it")
    a.add_argument("--replace", action="store_true", help="replace an existing registration")
    a.set_defaults(func=add)

    c = sub.add_parser("add-cert", help="add a transport certificate to a client (a renewal): its consents and "
                                        "tokens stay; either certificate authenticates it")
    c.add_argument("client_id", metavar="CLIENT_ID")
    c.add_argument("pem_file", type=Path, metavar="PEM_FILE",
                   help="the new certificate (PEM), issued by the client CA, with the client's software id as CN")
    add_arguments(c, ("client_ca",))
    c.set_defaults(func=add_cert)

    ls = sub.add_parser("list", help="every registered client, one a line")
    ls.set_defaults(func=list_clients)
    t = sub.add_parser("set-tier", help="move a client to another rate-limit tier of the policy (next call, every "
                                        "worker)")
    t.add_argument("client_id", metavar="CLIENT_ID")
    t.add_argument("tier", metavar="TIER")
    t.set_defaults(func=set_tier)
    pl = sub.add_parser("set-plan", help="move a client to another price plan of plans.yaml (its quotas and prices; "
                                         "next call, every worker)")
    pl.add_argument("client_id", metavar="CLIENT_ID")
    pl.add_argument("plan", metavar="PLAN")
    pl.set_defaults(func=set_plan)
    for name, func, text in (("show", show, "one client's registration as JSON, then its tier, rate-limit usage and "
                                             "price plan"),
                             ("disable", disable, "stop a client: its tokens fail from the next call, and its "
                                                  "software may not register again through DCR"),
                             ("enable", enable, "allow a disabled client again (a deleted one: let its software "
                                                "register again through DCR)")):
        c = sub.add_parser(name, help=text)
        c.add_argument("client_id", metavar="CLIENT_ID")
        c.set_defaults(func=func)
    for parser in sub.choices.values():
        add_arguments(parser, _CONNECTION)
    for name in _AUDITED:  # where the operator's audit record is signed with (the gateway's own keys)
        add_arguments(sub.choices[name], ("audit_signing_key",) if name == "add-cert" else _AUDIT_KEYS)


def _with_store(args, work):
    """Run `work(store, settings)`: settings with the Redis found, for the operator's audit record."""
    return with_redis(args, lambda client, settings: work(ClientStore(client), settings))


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise CliError(f"{path}:1:1: expected a JSON object")
    return value


def _jwks(path: Path) -> dict:
    value = _read_json(path)
    keys = value.get("keys", [value] if "kty" in value else [])
    if not keys:
        raise CliError(f"{path}: no JWK in the file")
    return {"keys": [public_jwk(k) for k in keys]}


def _certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    except ValueError:
        raise CliError(f"{path}: not a PEM certificate") from None


def build_client(client_id: str, *, cert: Path, redirect_uris: list[str], jwks: dict | None, roles: list[str],
                 auth_methods: list[str] | None, name: str | None, notification_url: str | None = None,
                 dpop: bool = False) -> Client:
    """A registration from files, as `clients add` and `obgw demo` make it."""
    certificate = _certificate(cert)
    if not redirect_uris or any(not uri.startswith("https://") for uri in redirect_uris):
        raise CliError("give at least one --redirect-uri, each an https:// URL")
    methods = auth_methods or (list(AUTH_METHODS) if jwks else ["tls_client_auth"])
    if "private_key_jwt" in methods and not (jwks and jwks["keys"]):
        raise CliError("private_key_jwt needs --jwks (or --from-json)")
    if notification_url is not None and not notification_url_allowed(notification_url):
        raise CliError(f"--notification-url {notification_url!r}: must be https (http only to 127.0.0.1/localhost)")
    return Client(
        client_id=client_id, client_name=name or client_id, roles=tuple(roles), redirect_uris=tuple(redirect_uris),
        auth_methods=tuple(methods), cert_thumbprints=(x5t_s256(certificate.public_bytes(Encoding.DER)),),
        subject_dn=certificate.subject.rfc4514_string(), issuer_dn=certificate.issuer.rfc4514_string(),
        jwks=jwks or {"keys": []}, created_at=int(time.time()), origin="cli", notification_url=notification_url,
        dpop_bound_access_tokens=dpop)


def from_registration_file(path: Path) -> tuple[Path, list[str], dict]:
    """(certificate, redirect URIs, public JWKS) of a certs/dev/<name>.json registration file."""
    registration = _read_json(path)
    try:
        return (Path(registration["cert"]), [registration["redirect_uri"]],
                {"keys": [public_jwk(registration["private_jwk"])]})
    except (KeyError, TypeError):
        raise CliError(f"{path}: needs cert, redirect_uri and private_jwk") from None


def client_from_args(args) -> Client:
    cert, redirect_uris, jwks = args.cert, list(args.redirect_uri), _jwks(args.jwks) if args.jwks else None
    if args.from_json:
        file_cert, file_uris, file_jwks = from_registration_file(args.from_json)
        cert, redirect_uris, jwks = cert or file_cert, redirect_uris or file_uris, jwks or file_jwks
    if cert is None:
        raise CliError("give --cert (or --from-json)")
    return build_client(args.client_id, cert=cert, redirect_uris=redirect_uris, jwks=jwks,
                        roles=args.role or list(ROLES), auth_methods=args.auth_method, name=args.name,
                        notification_url=args.notification_url, dpop=args.dpop)


def add(args) -> int:
    client = client_from_args(args)

    def work(store: ClientStore, settings) -> int:
        if not args.replace and store.get(client.client_id) is not None:
            raise CliError(f"client {client.client_id} exists (use --replace)")
        audited(settings, "clients add", client_id=client.client_id)
        if args.replace:
            store.replace(client.to_document(), client.software)
        elif not store.add(client.to_document()):
            raise CliError(f"client {client.client_id} exists (use --replace)")
        print(f"registered {client.client_id}: {', '.join(client.auth_methods)}; roles {', '.join(client.roles)}")
        return 0
    return _with_store(args, work)


def list_clients(args) -> int:
    def work(store: ClientStore, _settings) -> int:
        for document in store.all():
            c = Client.from_document(document)
            print(f"{c.client_id}\t{c.status}\t{','.join(c.roles)}\t{','.join(c.auth_methods)}\t{c.client_name}")
        return 0
    return _with_store(args, work)


_policy = policy_from


def show(args) -> int:
    policy = _policy(args)
    limits = policy.limits

    def work(store: ClientStore, _settings) -> int:
        document = store.get(args.client_id)
        if document is None:
            raise CliError(f"no client {args.client_id}")
        print(json.dumps(document, indent=2, sort_keys=True))
        tier = store.tier(args.client_id) or limits.default_tier
        print(f"rate-limit tier: {tier}" + ("" if store.tier(args.client_id) else " (the policy's default)"))
        for group in ("default", *limits.groups):
            limit = limits.for_route_group(group).get(tier)
            if limit is None:
                print(f"  {group}: unlimited")
                continue
            print(f"  {group}: {describe_usage(limit, store.rate_state(args.client_id, group))}")
        plan = store.plan(args.client_id)
        print(f"price plan: {plan or policy.plans.default_plan}" + ("" if plan else " (the policy's default)"))
        return 0
    return _with_store(args, work)


def describe_usage(limit, state) -> str:
    """"57 of 100 left (20/s, burst 100); whole again in 3 s" from a GCRA bucket's arrival time."""
    head = f"{limit.rate_per_second}/s, burst {limit.burst}"
    if state is None:
        return f"{limit.burst} of {limit.burst} left ({head})"
    tat, now = state
    interval = 1_000_000 / limit.rate_per_second
    left = max(0, min(limit.burst, int((now + interval * limit.burst - max(tat, now)) // interval)))
    return f"{left} of {limit.burst} left ({head}); whole again in {max(0, math.ceil((tat - now) / 1e6))} s"


def set_tier(args) -> int:
    return _move(args, "tier", args.tier, _policy(args).limits.tiers, ClientStore.set_tier)


def set_plan(args) -> int:
    return _move(args, "plan", args.plan, _policy(args).plans.plans, ClientStore.set_plan)


def _move(args, kind: str, name: str, defined, store_it) -> int:
    """`set-tier` / `set-plan`: put the client on the policy's tier or plan `name`, read by Admit from its next call."""
    if name not in defined:
        raise CliError(f"unknown {kind} {name!r} (the policy defines: {', '.join(sorted(defined))})")

    def work(store: ClientStore, settings) -> int:
        if store.get(args.client_id) is None:
            raise CliError(f"no client {args.client_id}")
        audited(settings, f"clients set-{kind}", client_id=args.client_id)
        store_it(store, args.client_id, name)
        print(f"{args.client_id} is on {kind} {name} from its next call")
        return 0
    return _with_store(args, work)


def _verified(path: Path, ca_file: Path) -> x509.Certificate:
    """The certificate in `path`, if it chains to the client CA and is valid now for TLS client authentication (the
    checks the TLS layer makes at the handshake)."""
    certificate = _certificate(path)
    try:
        anchors = Store(x509.load_pem_x509_certificates(ca_file.read_bytes()))
    except OSError as exc:
        raise CliError(f"{ca_file}: {exc.strerror}") from None
    verifier = PolicyBuilder().store(anchors).time(datetime.now(timezone.utc)).build_client_verifier()
    try:
        verifier.verify(certificate, [])
    except VerificationError as exc:
        raise CliError(f"{path}: not a client certificate of the CA {ca_file} valid now ({exc})") from None
    return certificate


def add_cert(args) -> int:
    """RFC 8705: a client may hold several certificates, so a renewal overlaps the old one; refresh tokens are bound
    to the client (§4), so its consents carry on with the new certificate."""
    certificate = _verified(args.pem_file, settings_from(args).client_ca)
    new = x5t_s256(certificate.public_bytes(Encoding.DER))

    def work(store: ClientStore, settings) -> int:
        document = store.get(args.client_id)
        if document is None:
            raise CliError(f"no client {args.client_id}")
        client = Client.from_document(document)
        name = common_name(certificate.subject.rfc4514_string())
        if client.software is not None and name != client.software:
            raise CliError(f"{args.pem_file}: its CN is {name!r}, not the client's software id {client.software!r}")
        audited(settings, "clients add-cert", client_id=args.client_id)
        if new not in client.cert_thumbprints:
            # The stored document, not the Client rebuilt: what registration keeps beside it (the registration
            # access token's digest, the statement's redirect URIs) stays.
            store.replace(document | {"cert_thumbprints": [*client.cert_thumbprints, new]}, client.software)
        print(f"{args.client_id}: certificate {new} registered ({len(set(client.cert_thumbprints) | {new})} in all); "
              "its consents and tokens are unchanged")
        return 0
    return _with_store(args, work)


def disable(args) -> int:
    def work(store: ClientStore, settings) -> int:
        document = store.get(args.client_id)
        if document is None:
            raise CliError(f"no client {args.client_id}")
        audited(settings, "clients disable", client_id=args.client_id)
        store.replace(document | {"status": "disabled"}, Client.from_document(document).software)
        print(f"{args.client_id} disabled")
        return 0
    return _with_store(args, work)


def enable(args) -> int:
    def work(store: ClientStore, settings) -> int:
        document = store.get(args.client_id)
        if document is None and not store.refused_software_of(args.client_id):
            raise CliError(f"no client {args.client_id}")
        audited(settings, "clients enable", client_id=args.client_id)
        if document is None:
            freed = store.allow_software_of(args.client_id)
            if not freed:
                raise CliError(f"no client {args.client_id}")
            print(f"{args.client_id} is deleted; its software {', '.join(freed)} may register again")
            return 0
        store.replace(document | {"status": "active"}, Client.from_document(document).software)
        print(f"{args.client_id} active")
        return 0
    return _with_store(args, work)
