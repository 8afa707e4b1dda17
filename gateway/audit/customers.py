"""The bank's customer id as Redis may hold it: never in clear next to the consent ids every audit record carries.

Issue 14 item 5: were the customer id stored in clear in a consent, anyone reading Redis could join the audit log
(pseudonymous: records name the customer by `subject`) to customers without the pseudonym key. So the pseudonym key
(`audit.key`, audit/key_files.py), already the one secret that re-identifies a customer, also guards the id in Redis:

- the customer's consent index is named by their audit pseudonym (`subject`), which the dashboard computes from the
  id it learns at login and `obgw audit search --customer` computes to re-identify;
- a consent holds the id sealed (crypto.py) under a key derived from the pseudonym key, bound to the consent
  id, because the gateway must still tell the bank whose data a call reads (`x-bank-customer-id`). Admit gets it
  sealed and opens it once per consent and worker (a small LRU keeps the hot path to a dictionary lookup).

A value without the `sealed:` prefix was stored in clear by an older version: it is read as it is, and sealed when
the consent is next written or by the migration at start (consents/legacy.py).
"""
from __future__ import annotations

import base64
import functools
from pathlib import Path

from gateway.audit.key_files import load_pseudonym_key
from gateway.crypto import (
    SEALED,
    SealBroken,
    Sealer,
    b64url,
    derive_key,
    is_sealed,
    pseudonym,
)

_LABEL = b"obgw consent customer id v1"


class CustomerIdUnreadable(Exception):
    """A consent's sealed customer id does not open: the pseudonym key file was replaced, or Redis was written."""


class CustomerIds:
    def __init__(self, pseudonym_key: bytes) -> None:
        self._key = pseudonym_key
        self._sealer = Sealer(derive_key(pseudonym_key, _LABEL))
        # Customers and their consents are few next to calls: one AES-GCM-SIV open per consent per worker.
        self.reveal = functools.lru_cache(maxsize=65_536)(self._reveal)

    @classmethod
    def from_file(cls, path: Path) -> CustomerIds:
        return cls(load_pseudonym_key(path))

    def pseudonym(self, customer_id: str) -> str:
        """The customer's audit `subject`: what their consent index is named by."""
        return pseudonym(self._key, customer_id)

    def seal(self, consent_id: str, customer_id: str) -> str:
        """The id as the consent `consent_id` stores it; a value sealed already is returned as it is."""
        if is_sealed(customer_id):
            return customer_id
        sealed = self._sealer.seal(customer_id.encode(), consent_id.encode())
        return SEALED + b64url(sealed)

    def _reveal(self, consent_id: str, stored: str) -> str:
        """The customer id a consent stores (sealed, or in clear by an older version)."""
        if not is_sealed(stored):
            return stored
        text = stored[len(SEALED):]
        try:
            sealed = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
            return self._sealer.open(sealed, consent_id.encode()).decode()
        except (SealBroken, ValueError):
            raise CustomerIdUnreadable(f"consent {consent_id}: its customer id does not open with the audit pseudonym "
                                       f"key (was audit.key replaced, or the consent changed in Redis?)") from None
