"""The bank's feed of payment status changes, which the gateway reads to tell TPPs (UK OB resource-update events).

Each time a payment order's status becomes another - when it is placed (a payment made at once is settled then),
and when a later execution changes it (a scheduled payment or a file executed on its date, paid or refused) - one
change is noted with the next sequence number: the payment's id, kind, consent, new status and when. A change says
what happened; nothing about the customer, the accounts or the amounts.

    GET /internal/payment-status-changes?after=<seq>&limit=<n>
    → {"epoch": <this process's id>, "changes": [{"seq", "payment_id", "type", "consent_id", "status", "at"}, ...]}

The read first runs what has fallen due (the ledger catches up), so a scheduled payment's execution is noted by the
time it is asked for. Why the gateway pulls: the bank is a back end the gateway calls on loopback (it knows no
gateway and needs no credential for one); what the gateway has read is its cursor, kept in Redis, so a gateway that
was down reads on where it stopped. The changes live in memory, the last KEPT of them: a new bank process has a new
`epoch` (its numbers start again), which tells the reader to start again from its first change.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.sandbox.orders import Order

KEPT = 10_000
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Change:
    seq: int
    payment_id: str
    type: str  # the payment's kind, by its UK OB resource type (domestic-payment, domestic-scheduled-payment, ...)
    consent_id: str
    status: str
    at: datetime

    def to_json(self) -> dict:
        return {"seq": self.seq, "payment_id": self.payment_id, "type": self.type, "consent_id": self.consent_id,
                "status": self.status, "at": self.at.isoformat()}


class StatusChanges:
    """Noted by `backoffice.Orders` under the ledger's lock; read by the route below."""

    def __init__(self, kept: int = KEPT) -> None:
        self.epoch = uuid.uuid4().hex
        self._changes: deque[Change] = deque(maxlen=kept)
        self._seq = 0
        self._status: dict[str, str] = {}  # each order's status as last noted

    def seed(self, order: Order) -> None:
        """An order as it was before this process (a state file replayed): its status is known, not a change."""
        self._status[order.order_id] = order.status()

    def note(self, order: Order) -> None:
        status = order.status()
        if self._status.get(order.order_id) == status:
            return
        self._status[order.order_id] = status
        self._seq += 1
        self._changes.append(Change(self._seq, order.order_id, order.kind.name, order.consent_id, status,
                                    order.status_time()))

    def since(self, after: int, limit: int) -> list[Change]:
        return [change for change in self._changes if change.seq > after][:limit]


def routes(changes: StatusChanges, catch_up, lock) -> list[Route]:
    """`catch_up()` runs what has fallen due (the ledger's), under `lock` with what notes changes."""

    async def read(request: Request) -> Response:
        try:
            after = int(request.query_params.get("after", "0"))
            limit = min(int(request.query_params.get("limit", "100")), MAX_LIMIT)
        except ValueError:
            return JSONResponse({"error": "after and limit must be whole numbers"}, status_code=400)
        catch_up()
        with lock:
            found = changes.since(after, max(limit, 0))
        return JSONResponse({"epoch": changes.epoch, "changes": [change.to_json() for change in found]})

    return [Route("/internal/payment-status-changes", read)]
