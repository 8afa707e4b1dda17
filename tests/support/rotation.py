"""After `obgw keys rotate`: the authorization server signs with the new key at once (it reads the keys at every
use), but a worker's verifier re-reads them for an unknown kid at most once a second (pipeline.token.KeyCache), so a
token of the new key may be refused for up to a second on a worker that re-read them just before the rotation."""
from __future__ import annotations

from support.faults import call, until_every_worker, workers
from support.tpp import CONSENTS, Tpp


def until_every_worker_takes_the_new_key(gateway, tpp: Tpp) -> None:
    """Polls, on fresh connections, until every worker has verified a client-credentials token of the current key:
    a GET of a consent that does not exist is then 400 (no such consent), not 401 (unknown key)."""
    token = tpp.client_credentials()["access_token"]
    until_every_worker(lambda: call(gateway, tpp.context, "GET", f"{CONSENTS}/aac-none", token), workers(gateway),
                       lambda answer: answer.status == 400)
