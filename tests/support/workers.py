"""Reaching every worker of a `obgw serve --workers 2`: the workers share the listening socket and the kernel picks
which one accepts a connection, so calls on fresh connections land on both only most of the time. These helpers
call in batches until the audit log shows every worker answered, within a bound (a missing worker fails the test)."""
from __future__ import annotations

from collections.abc import Callable

import httpx

BATCH = 16
MOST_BATCHES = 6


def on_every_worker(gateway, call: Callable[[], httpx.Response], workers: int = 2,
                    client_id: str = "tpp-demo") -> tuple[list[httpx.Response], list[dict]]:
    """(every answer, their audit records) once `workers` chains (worker processes) have answered, each on a new
    connection made by `call`; at most MOST_BATCHES batches of BATCH calls."""
    answers: list[httpx.Response] = []
    records: list[dict] = []
    for _ in range(MOST_BATCHES):
        answers += [call() for _ in range(BATCH)]
        ids = {a.headers["x-fapi-interaction-id"] for a in answers}
        records = [r for r in gateway.audit("--client", client_id) if r["interaction_id"] in ids]
        if len({r["chain"] for r in records}) >= workers:
            break
    assert len({r["chain"] for r in records}) >= workers, f"{len(answers)} calls all reached one worker"
    return answers, records
