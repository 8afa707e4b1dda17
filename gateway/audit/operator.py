"""What operators do that the log records about itself: re-identifying a customer, and every command that changes
a client, a consent or a signing key (`cli/_operator.py`).

The record goes to a chain of its own (`operator-<host>-<pid>-<random>`), signed and checkpointed like a worker's,
before the command shows anything; if Redis cannot take it, the command refuses (no spool: fail closed).
"""
from __future__ import annotations

import asyncio
import getpass
import socket
import uuid
from datetime import datetime, timezone

from gateway.audit.chain import AuditChain, new_chain_id
from gateway.audit.key_files import load_signing_key
from gateway.audit.record import AuditRecord
from gateway.settings import Settings
from gateway.store.redis import async_client


def operator_name() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


async def _append(settings: Settings, record: AuditRecord) -> None:
    client = async_client(settings.redis)
    chain = AuditChain(client, settings.var_dir / "audit" / "checkpoints.jsonl", chain_id=f"operator-{new_chain_id()}",
                       signer=load_signing_key(settings.audit_signing_key_file), spool=False)
    try:
        await chain.append(record)
    finally:
        await chain.close()  # writes the signed checkpoint of this chain's head
        await client.aclose()


def record_operator_action(settings: Settings, *, route: str, reason: str, subject: str | None = None,
                           client_id: str | None = None, consent_id: str | None = None) -> None:
    """Append one record of an operator's action; raises if it cannot be stored (the action must not happen)."""
    now = datetime.now(timezone.utc)
    record = AuditRecord(ts=now.isoformat(timespec="milliseconds"), interaction_id=str(uuid.uuid4()), method="CLI",
                         route=route, status=0, decision="allow", reason=reason, latency_ms=0.0, client_id=client_id,
                         consent_id=consent_id, subject=subject, operator=operator_name())
    asyncio.run(_append(settings, record))
