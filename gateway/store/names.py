"""Every Redis key name, in one place. Keys are `obgw:<kind>:<id>`.

Keys that one request's script touches together will carry the TPP's client id as a Redis Cluster hash tag
(`obgw:{tpp-demo}:consent:<id>`) so a one-round-trip script stays valid on Redis Cluster.
"""
from __future__ import annotations

import binascii
import functools
import hashlib
import itertools

# Audit log. Each shard has its own hash tag (its own Cluster slot, so its own master): a stream holding its chains'
# records in arrival order, a hash of each chain's head, the archive bookkeeping and the consents' recent accesses
# its chains wrote. A chain writes to one shard (audit/chain.py), so the append script runs on one slot. Shard 0 keeps
# the names every version before shards wrote; the others' tags are listed in AUDIT_SHARDS (in shard 0's slot), so a
# reader finds every shard ever written, whatever OBGW_AUDIT_SHARDS says now.
AUDIT_TAG = "audit"
AUDIT_SHARDS = "obgw:{audit}:shards"
SLOTS = 16384  # Redis Cluster hash slots


@functools.cache
def audit_shard_tag(index: int, count: int) -> str:
    """Shard `index` of `count`: its hash tag. Shard 0 is "audit"; shard k's tag hashes to the slot k/count of the
    way round the slot ring from shard 0's, so `count` shards on `count` masters holding equal slot ranges (what
    `redis-cli --cluster create` makes) land on `count` different masters."""
    if not 0 <= index < count:
        raise ValueError(f"audit shard {index} is not one of 0..{count - 1}")
    if index == 0:
        return AUDIT_TAG
    target = (_slot(AUDIT_TAG) + round(index * SLOTS / count)) % SLOTS
    return next(tag for tag in (f"{AUDIT_TAG}-{index}.{n}" for n in itertools.count()) if _slot(tag) == target)


def _slot(tag: str) -> int:
    """The Redis Cluster slot of a hash tag: CRC16/XMODEM (binascii's crc_hqx from 0) modulo 16384."""
    return binascii.crc_hqx(tag.encode(), 0) % SLOTS


def audit_stream(tag: str) -> str:
    return f"obgw:{{{tag}}}:records"


def audit_heads(tag: str) -> str:
    return f"obgw:{{{tag}}}:heads"


# Audit retention (audit/archive.py), per shard: what its archive on disk holds as Redis last committed to it (its
# manifest's last line digest and number, the last stream id archived), and the lease of its one archiver at a time.
def audit_archive(tag: str) -> str:
    return f"obgw:{{{tag}}}:archive"


def audit_archive_lease(tag: str) -> str:
    return f"obgw:{{{tag}}}:archive-lease"


# Shard 0's names, as they always were.
AUDIT_STREAM = audit_stream(AUDIT_TAG)
AUDIT_HEADS = audit_heads(AUDIT_TAG)
AUDIT_ARCHIVE = audit_archive(AUDIT_TAG)
AUDIT_ARCHIVE_LEASE = audit_archive_lease(AUDIT_TAG)


def _tag(client_id: str) -> str:
    return "{" + client_id + "}"


# TPP registry (issue 4): one JSON document per client, and the set of every client id.
CLIENTS = "obgw:clients"


def client(client_id: str) -> str:
    return f"obgw:client:{client_id}"


# Dynamic registration: software statements used (by the SHA-256 of issuer and jti, kept while the statement could
# still be accepted), and the software of disabled or deleted clients (software id → client id), which DCR refuses.
REFUSED_SOFTWARE = "obgw:refused-software"


def statement_jti(digest: str) -> str:
    return f"obgw:statement-jti:{digest}"


# Authorization server state. Codes, request_uris and refresh tokens are stored under the SHA-256 of their value,
# so reading Redis never yields a usable credential.
SIGNING_KEYS = "obgw:signing-keys"
PSEUDONYM_SECRET = "obgw:secret:pseudonym"


def pushed_request(digest: str) -> str:
    return f"obgw:par:{digest}"


# A code and its redemption marker are taken together (take_owned.lua): the digest is their hash tag, one slot.
def authorization_code(digest: str) -> str:
    return f"obgw:code:{_tag(digest)}"


def used_code(digest: str) -> str:
    return f"obgw:code-used:{_tag(digest)}"


def assertion_jtis(client_id: str) -> str:
    """The TPP's client-assertion jtis in use (a sorted set of their SHA-256, scored by when each may go)."""
    return f"obgw:{_tag(client_id)}:jtis"


def refresh_token(client_id: str, digest: str) -> str:
    return f"obgw:{_tag(client_id)}:refresh:{digest}"


def dpop_proof(client_id: str, digest: str) -> str:
    """A DPoP proof's jti (its SHA-256), present while the proof could be accepted: a proof is used once."""
    return f"obgw:{_tag(client_id)}:dpop-jti:{digest}"


def revoked_token(client_id: str, jti: str) -> str:
    return f"obgw:{_tag(client_id)}:revoked-token:{jti}"


def revoked_grant(client_id: str, grant_id: str) -> str:
    return f"obgw:{_tag(client_id)}:revoked-grant:{grant_id}"


# Revoked signing keys (kid → until when, ms, their markers must stay): a client registered meanwhile is marked too.
REVOKED_KEYS = "obgw:revoked-keys"


def revoked_key(client_id: str, kid: str) -> str:
    """Present while a revoked signing key's tokens could still verify somewhere: Admit refuses them for this TPP."""
    return f"obgw:{_tag(client_id)}:revoked-key:{kid}"


def login_attempts(digest: str) -> str:
    """One username's (by its hash) login attempts, locks and the current lock's end (store.logins)."""
    return f"obgw:login-attempts:{digest}"


def login_source(digest: str) -> str:
    """Failed logins from one source address (by its hash) in the current window (store.logins)."""
    return f"obgw:login-source:{digest}"


def customer_session(kind: str, digest: str) -> str:
    return f"obgw:session:{kind}:{digest}"


# Consents: the record carries its TPP's hash tag (Admit reads it with the token's revocation keys in one script);
# the owner index finds a consent by id alone (CLI, customer pages).
def consent(client_id: str, consent_id: str) -> str:
    return f"obgw:{_tag(client_id)}:consent:{consent_id}"


def consent_owner(consent_id: str) -> str:
    return f"obgw:consent-owner:{consent_id}"


def client_disabled(client_id: str) -> str:
    """Present while a client is disabled or deleted: Admit refuses its tokens on the next call."""
    return f"obgw:{_tag(client_id)}:disabled"


def customer_consents(customer_id: str) -> str:
    return f"obgw:customer-consents:{customer_id}"


def subject_consents(subject: str) -> str:
    """A customer's consents, named by their audit pseudonym (audit/customers.py), never by their id: what replaces
    `customer_consents`, which versions before issue 14 wrote (read, and merged at start, by consents.legacy)."""
    return f"obgw:subject-consents:{subject}"


def unattended_calls(client_id: str, consent_id: str) -> str:
    """The consent's unattended calls in the rolling window (a sorted set of call times)."""
    return f"obgw:{_tag(client_id)}:unattended:{consent_id}"


def consent_accesses(consent_id: str, tag: str = AUDIT_TAG) -> str:
    """The consent's latest accesses (newest first, capped) that the chains of audit shard `tag` served, written with
    their records in one script."""
    return f"obgw:{{{tag}}}:consent-accesses:{consent_id}"


# Notifications to TPPs (revoked consents): a durable outbox stream read by every worker through one consumer group.
NOTIFY_OUTBOX = "obgw:{notify}:outbox"
NOTIFY_GROUP = "notifiers"
NOTIFY_PARKED = "parked"  # the pseudo-consumer holding entries that wait for their next attempt


# Events (UK OB Event Notification and Events APIs; store/events.py): per TPP, the events kept for aggregated polling
# (a hash jti -> the event's facts, and a sorted set of the jtis by when each was kept) and its one event
# subscription; all under the TPP's hash tag, so one script keeps, filters and trims them together.
def events(client_id: str) -> str:
    return f"obgw:{_tag(client_id)}:events"


def event_queue(client_id: str) -> str:
    return f"obgw:{_tag(client_id)}:event-queue"


def event_subscription(client_id: str) -> str:
    return f"obgw:{_tag(client_id)}:event-subscription"


# The bank's payment status changes (events/bank_feed.py): how far the gateway has read them (the bank's epoch and
# sequence number), and the lease of the one worker that reads them.
EVENT_FEED = "obgw:{events}:bank-feed"
EVENT_FEED_LEASE = "obgw:{events}:bank-feed-lease"


def rate_bucket(client_id: str, group: str) -> str:
    """The TPP's GCRA state (its theoretical arrival time, µs) for one route group."""
    return f"obgw:{_tag(client_id)}:rate:{group}"


def client_tier(client_id: str) -> str:
    """The TPP's rate-limit tier, read by the admission scripts on every call (`obgw clients set-tier`)."""
    return f"obgw:{_tag(client_id)}:tier"


def idempotency_record(client_id: str, key: str) -> str:
    """The (TPP, x-idempotency-key) record; the key under its SHA-256 (any string, any length, is a safe name)."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"obgw:{_tag(client_id)}:idem:{digest}"


# VRP periodic limits (store.vrp): what a consent's payments have used per period instance, and the claims of
# payments whose outcome is not settled yet. Hash-tagged by the consent, so the one script touches one slot.
def vrp_usage(consent_id: str) -> str:
    """A hash per consent: u:<period id> settled, p:<period id> pending (claimed, outcome not known yet),
    s:<period id> when a claim last named the period (ms, Redis time; old periods are pruned by it)."""
    return f"obgw:{_tag(consent_id)}:vrp-usage"


def vrp_claims(consent_id: str) -> str:
    """A hash per consent: claim id -> JSON {a: amount, p: [period ids], t: claimed at ms, h: resolve by ms}."""
    return f"obgw:{_tag(consent_id)}:vrp-claims"


# Metering and plans (issue 20): the TPP's plan (`obgw clients set-plan`, read by admit.lua on every call) and its
# usage per UTC month: a hash `<product>:calls|billable|refused:<reason>` -> count, and `plan` (the plan last charged).
def client_plan(client_id: str) -> str:
    return f"obgw:{_tag(client_id)}:plan"


def usage(client_id: str, month: str) -> str:
    """The TPP's metered calls in one UTC month (`YYYY-MM`)."""
    return f"obgw:{_tag(client_id)}:usage:{month}"
