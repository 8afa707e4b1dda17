"""CPU cost of the hot path's pure-Python steps, per call, on this machine (no I/O):

    .venv/bin/python loadtests/hot_path_costs.py

- verifying an ES256 access token (what a worker does once per token) vs. a verified-claims cache hit;
- issuing an access token and id_token (the token endpoint);
- cutting a bank answer to a consent (Minimise): 3 accounts, and 220 transactions (~200 KB).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

from gateway.oauth.models import Client, Grantee
from gateway.oauth.signing_keys import KeyEncryptionKey, KeyRing, new_key_record
from gateway.oauth.tokens import AccessTokenVerifier, TokenIssuer
from gateway.policy import load_policy
from gateway.policy.fields import Entitlement, minimise
from gateway.sandbox.data import build_bank

POLICIES = Path(__file__).resolve().parents[1] / "policies"


def per_call(work, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        work()
    return (time.perf_counter() - started) / n * 1e6


class _Keys:
    def __init__(self) -> None:
        kek = KeyEncryptionKey(bytes(32))
        kid, record = new_key_record(kek)
        self.keyring = KeyRing({kid: record}, 600, kek=kek)

    def ring(self) -> KeyRing:
        return self.keyring


class _NoStore:
    def save_refresh_token(self, *args) -> None:
        """Refresh tokens are not measured here."""


def main() -> None:
    keys = _Keys()
    issuer = TokenIssuer(keys, _NoStore(), "https://gw", "https://gw/open-banking/v3.1", 600, 3600)
    client = Client("tpp", "tpp", ("AISP",), ("https://tpp/cb",), ("tls_client_auth",), "thumb", None, None)
    grantee = Grantee("alice", "cust-x", "aac-1", "grant-1", int(time.time()))
    token = issuer.issue(client, "thumb", "openid accounts", grantee, False)["access_token"]
    verifier = AccessTokenVerifier("https://gw", "https://gw/open-banking/v3.1", 600)
    cache = {token: {}}
    key = keys.keyring.verification_key(verifier.kid_of(token))
    print(f"verify ES256 access token (cache miss): {per_call(lambda: verifier.verify(token, key), 2000):8.1f} us")
    print(f"verified-claims cache hit:              {per_call(lambda: cache.get(token), 200_000):8.2f} us")
    issue = per_call(lambda: issuer.issue(client, "thumb", "openid accounts", grantee, False), 1000)
    print(f"issue access token + id_token:          {issue:8.1f} us")

    policy = load_policy(POLICIES)
    bank = build_bank(7, datetime.now(timezone.utc))
    accounts = orjson.dumps({"Data": {"Account": [a.to_ob() for a in bank.ledger.accounts_of("alice")]},
                             "Links": {"Self": "x"}, "Meta": {"TotalPages": 1}})
    entitlement = Entitlement(frozenset({"ReadAccountsDetail"}), frozenset({"acc-alice-current", "acc-alice-card"}),
                              (None, None), "https://gw/open-banking/v3.1/aisp/accounts")
    fields = policy.fields["OBReadAccount6"]
    print(f"minimise 3 accounts:                    "
          f"{per_call(lambda: orjson.dumps(minimise(orjson.loads(accounts), fields, entitlement)), 5000):8.1f} us")
    entries = bank.ledger.entries("acc-alice-current")
    transactions = orjson.dumps({"Data": {"Transaction": [e.to_ob("GBP") for e in entries]},
                                 "Links": {"Self": "x"}, "Meta": {"TotalPages": 1}})
    entitlement = Entitlement(
        frozenset({"ReadTransactionsDetail", "ReadTransactionsCredits", "ReadTransactionsDebits"}),
        frozenset({"acc-alice-current"}), (None, None), "https://gw/x")
    fields = policy.fields["OBReadTransaction6"]
    cost = per_call(lambda: orjson.dumps(minimise(orjson.loads(transactions), fields, entitlement)), 200)
    print(f"minimise {len(entries)} transactions ({len(transactions) // 1024} KB):  {cost:8.1f} us")


if __name__ == "__main__":
    main()
