"""The load test's fixture: TPPs registered and consents authorised in bulk, through the gateway's own front doors.

    .venv/bin/python loadtests/fixture.py --gateway https://127.0.0.1:8443 --pki certs/dev --tpps 4 \\
        --out loadtests/results/fixture

There is no test-only path to switch on, so there is nothing a production gateway could be tricked into enabling:
each TPP gets a transport certificate from the CA in `--pki` (as a directory would issue one), registers itself by
dynamic client registration (RFC 7591, a software statement signed by the directory key in `--pki`), and every
consent is authorised by driving the real login and consent pages over HTTP with a customer's password (the e2e
tests' Authlib TPP and browser, `tests/support/tpp.py`). It works against any deployment that trusts that CA and
directory key and whose bank knows the customers.

Per TPP it obtains four kinds of consent, so the locust users can predict every refusal they meet:
- `reads`: account consents for customer-present reads, shared by every user of that TPP;
- `unattended`: account consents each owned by one user, whose 5th unattended call in a day is refused;
- `revocable`: account consents a user revokes mid-run, then checks that their token no longer works;
- `payments`: authorised domestic-payment consents, each paid once (with retries) by one user.

Writes `<out>/<tpp>.pem|.key|.json` (the certs/dev format, with the client id DCR issued) and `<out>/fixture.json`.
"""
from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import httpx  # noqa: E402
import jwt  # noqa: E402
from support.gateway import client_context  # noqa: E402
from support.tpp import (  # noqa: E402
    ALL_ACCOUNT_PERMISSIONS,
    CUSTOMER_PRESENT,
    Tpp,
    domestic_initiation,
)

from gateway.pki import (  # noqa: E402
    DEFAULT_REDIRECT_URI,
    issue_client_cert,
    load_ca,
    make_signing_jwk,
    public_jwk,
)

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"
CUSTOMERS = (("alice", "alice-pass"), ("bob", "bob-pass"))
CONSENT_CREATION_PAUSE = 0.6  # seconds between consents of one TPP: the consent-creation tier allows 2/s


def _software_statement(pki: Path, name: str, signing_jwk: dict) -> str:
    directory = json.loads((pki / "directory.json").read_text())
    key = jwt.PyJWK(directory["private_jwk"]).key
    claims = {"iss": directory["iss"], "iat": int(time.time()), "jti": str(uuid.uuid4()), "software_id": name,
              "software_client_name": f"Load test {name}", "software_roles": ["AISP", "PISP"],
              "software_redirect_uris": [DEFAULT_REDIRECT_URI], "software_jwks": {"keys": [public_jwk(signing_jwk)]}}
    return jwt.encode(claims, key, "ES256", headers={"kid": directory["private_jwk"]["kid"]})


def register(base: str, pki: Path, out: Path, name: str, auth: str) -> None:
    """A certificate for `name` from the CA, then DCR with it; writes <out>/<name>.{pem,key,json}."""
    cert, key = out / f"{name}.pem", out / f"{name}.key"
    issue_client_cert(load_ca(pki), name).write(cert, key)
    signing = make_signing_jwk()
    body = {"software_statement": _software_statement(pki, name, signing), "token_endpoint_auth_method": auth}
    with httpx.Client(verify=client_context(pki / "ca.pem", cert, key), timeout=30) as http:
        answer = http.post(base + "/oauth2/register", json=body)
    if answer.status_code != 201:
        raise SystemExit(f"fixture: registering {name} failed: {answer.status_code} {answer.text}")
    registration = {"client_id": answer.json()["client_id"], "redirect_uri": DEFAULT_REDIRECT_URI,
                    "cert": str(cert), "key": str(key), "private_jwk": signing}
    path = out / f"{name}.json"
    path.write_text(json.dumps(registration, indent=2) + "\n")
    path.chmod(0o600)


def account_consent(tpp: Tpp, customer: str) -> dict:
    token = tpp.consent_token(ALL_ACCOUNT_PERMISSIONS, customer=customer)
    listed = tpp.get(ACCOUNTS, token)
    listed.raise_for_status()
    return {"consent_id": token["consent_id"], "access_token": token["access_token"], "customer": customer,
            "account_ids": sorted(a["AccountId"] for a in listed.json()["Data"]["Account"])}


def payment_consent(tpp: Tpp, customer: str) -> dict:
    order = domestic_initiation("1.00", "LOAD-TEST")
    consent = tpp.payment_consent(order)
    if consent.status_code != 201:
        raise SystemExit(f"fixture: payment consent for {tpp.name} refused: {consent.status_code} {consent.text}")
    consent_id = consent.json()["Data"]["ConsentId"]
    token = tpp.authorise_payment(consent_id, customer)
    return {"consent_id": consent_id, "access_token": token["access_token"], "initiation": order}


def build(base: str, pki: Path, out: Path, tpps: int, reads: int, unattended: int, revocable: int,
          payments: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(pki / "ca.pem", out / "ca.pem")
    shutil.copy(pki / "customers.json", out / "customers.json")  # the customers' authenticators, for the logins
    run = secrets.token_hex(3)
    fixture = {"gateway": base, "ca": str(out / "ca.pem"), "customer_present": CUSTOMER_PRESENT, "tpps": []}
    for i in range(tpps):
        name = f"load-{run}-{i + 1}"
        auth = ("tls_client_auth", "private_key_jwt")[i % 2]
        register(base, pki, out, name, auth)
        tpp = Tpp(base, out, name, auth=auth)
        try:
            entry = {"name": name, "client_id": tpp.client_id, "auth": auth, "cert": str(out / f"{name}.pem"),
                     "key": str(out / f"{name}.key"), "private_jwk": tpp.jwk,
                     "reads": [], "unattended": [], "revocable": [], "payments": []}
            kinds = [("reads", reads), ("unattended", unattended), ("revocable", revocable)]
            made = 0
            for kind, count in kinds:
                for _ in range(count):
                    entry[kind].append(account_consent(tpp, CUSTOMERS[made % 2][0]))
                    made += 1
                    time.sleep(CONSENT_CREATION_PAUSE)
            for _ in range(payments):
                entry["payments"].append(payment_consent(tpp, "alice"))
                time.sleep(CONSENT_CREATION_PAUSE)
        finally:
            tpp.close()
        fixture["tpps"].append(entry)
        print(f"fixture: {name} ({auth}) registered, {made} account and {payments} payment consents", flush=True)
    path = out / "fixture.json"
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    path.chmod(0o600)  # it holds access tokens and signing keys
    return fixture


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", default="https://127.0.0.1:8443", help="the gateway's base URL")
    parser.add_argument("--pki", type=Path, default=ROOT / "certs" / "dev",
                        help="directory with ca.pem/ca.key and directory.json (default certs/dev)")
    parser.add_argument("--out", type=Path, default=ROOT / "loadtests" / "results" / "fixture")
    parser.add_argument("--tpps", type=int, default=4)
    parser.add_argument("--reads", type=int, default=2, help="shared customer-present consents per TPP")
    parser.add_argument("--unattended", type=int, default=3, help="consents per TPP for unattended refreshes")
    parser.add_argument("--revocable", type=int, default=2, help="consents per TPP revoked mid-run")
    parser.add_argument("--payments", type=int, default=3, help="authorised payment consents per TPP")
    args = parser.parse_args(argv)
    build(args.gateway, args.pki, args.out, args.tpps, args.reads, args.unattended, args.revocable, args.payments)
    print(f"fixture: written to {args.out / 'fixture.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
