"""`obgw demo`: everything on one laptop — dev PKI, embedded Redis, the sandbox bank and the gateway — until Ctrl-C."""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

from gateway.children import die_with_parent, private_child, stop
from gateway.cli import CliError
from gateway.cli._settings import settings_from
from gateway.cli.clients import build_client, from_registration_file
from gateway.oauth.models import ROLES
from gateway.pki import DEMO_TPPS, init_dev_pki
from gateway.server import StartError, serve
from gateway.settings import SETTINGS, add_arguments
from gateway.state import make_private
from gateway.store.clients import ClientStore
from gateway.store.embedded import EmbeddedRedisError
from gateway.store.redis import sync_client

BANK_READY_SECONDS = 20


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run the whole demo: PKI, Redis, sandbox bank, gateway", description=__doc__)
    add_arguments(p, tuple(s.name for s in SETTINGS))
    p.add_argument("--bank-host", default="127.0.0.1", help="sandbox bank address (default 127.0.0.1)")
    p.add_argument("--accounts-port", type=int, default=8081, help="sandbox accounts service port (default 8081)")
    p.add_argument("--payments-port", type=int, default=8082, help="sandbox payments service port (default 8082)")
    p.set_defaults(func=run)


def start_bank(host: str, accounts_port: int, payments_port: int, state_file,
               totp_window: int = 1) -> tuple[subprocess.Popen, str]:
    """Start the sandbox bank and wait for its ready line (it names the ports it bound). `totp_window`: the 30 s
    steps either side of now a one-time code may be for (`python -m gateway.sandbox --totp-window`)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.sandbox", "--host", host, "--accounts-port", str(accounts_port),
         "--payments-port", str(payments_port), "--state-file", str(state_file), "--totp-window", str(totp_window)],
        stdout=subprocess.PIPE, text=True, preexec_fn=private_child)
    deadline = time.monotonic() + BANK_READY_SECONDS
    line = ""
    while time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline() if process.stdout else ""
        if line.startswith("sandbox bank:"):
            return process, line.strip()
    stop(process)
    raise CliError(f"the sandbox bank did not start (last output: {line.strip()!r})")


def register_demo_tpps(redis_url: str, pki_dir) -> None:
    """tpp-demo and tpp-other, AISP, PISP and CBPII, both client authentication methods (CONTRACT §3, §10);
    refreshed on every start so a re-issued certificate or key is the registered one."""
    client = sync_client(redis_url)
    try:
        store = ClientStore(client)
        for name in DEMO_TPPS:
            cert, redirect_uris, jwks = from_registration_file(pki_dir / f"{name}.json")
            demo = build_client(name, cert=cert, redirect_uris=redirect_uris, jwks=jwks, roles=list(ROLES),
                                auth_methods=None, name=name)
            store.replace(demo.to_document(), demo.software)
    finally:
        client.close()


def _banner(settings, port: int, admin_port: int, bank_line: str, redis_line: str) -> None:
    base = f"https://{settings.host}:{port}"
    print(f"""
obgw demo is running (Ctrl-C stops everything)
  gateway         {base}   (mutual TLS; CA {settings.client_ca})
  admin           http://{settings.admin_host}:{admin_port}/healthz  /metrics  /admin (after `obgw admin password`)
  {bank_line}
  redis           {redis_line}
  demo customers  alice / alice-pass, bob / bob-pass, then the code of their authenticator (RFC 6238; the
                  secrets: {settings.client_ca.parent / "customers.json"})
  demo TPPs       tpp-demo, tpp-other (certs/dev/<name>.pem, .key, .json)

Try:
  curl {base}/.well-known/openid-configuration --cacert {settings.client_ca}      # the authorization server
  curl --cert certs/dev/tpp-demo.pem --key certs/dev/tpp-demo.key --cacert {settings.client_ca} \\
       {base}/oauth2/token -d grant_type=client_credentials -d scope=accounts -d client_id=tpp-demo
  The whole TPP flow (consent, PAR, login as alice, approve, token, accounts): README.md, "Try it".
  obgw audit tail
""", flush=True)


def run(args: argparse.Namespace) -> int:
    die_with_parent()  # `make demo` stopped by a signal stops the demo too, not only Ctrl-C at a terminal
    settings = settings_from(args)
    written = init_dev_pki(settings.client_ca.parent)
    if written:
        print(f"obgw: dev PKI written to {settings.client_ca.parent}")
    redis_line = "REDIS_URL" if settings.redis_url else f"embedded, append-only data in {settings.var_dir / 'redis'}"
    make_private(settings.var_dir)
    (settings.var_dir / "sandbox").mkdir(exist_ok=True)
    bank, bank_line = start_bank(args.bank_host, args.accounts_port, args.payments_port,
                                 settings.var_dir / "sandbox" / "ledger.jsonl")
    settings = settings.replace(service_urls={
        "accounts": f"http://{args.bank_host}:{args.accounts_port}",
        "payments": f"http://{args.bank_host}:{args.payments_port}",
        **settings.service_urls})
    try:
        def ready(s, port: int, admin_port: int) -> None:
            register_demo_tpps(s.redis_url, settings.client_ca.parent)
            _banner(s, port, admin_port, bank_line, redis_line)
        return serve(settings, on_ready=ready, embedded_redis=True)
    except (StartError, EmbeddedRedisError) as exc:
        raise CliError(str(exc)) from None
    finally:
        stop(bank)
