"""create_app(settings): the only wiring file. Middleware order, mounts and the lifespan are all here.

    InteractionId → Audit → RenderErrors → RefuseUnparsed → TransportIdentity → AnonymousThrottle → Router

    Router ├─ /.well-known, /oauth2/...  → authorization server
           ├─ .../account-access-consents → consent API pipeline
           ├─ /open-banking/...          → resource pipeline
           ├─ /openapi.json              → this API's document
           └─ anything else              → 404 (OBErrorResponse1)

Everything the request path needs (policy, pools, scripts, the audit chain) is built once per worker, here.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Mapping

from starlette.concurrency import run_in_threadpool
from starlette.routing import Route, Router
from starlette.types import ASGIApp

from gateway.admin import heartbeat, metrics
from gateway.audit.archive import Archiver, archive_every
from gateway.audit.chain import AuditChain
from gateway.audit.fingerprints import fingerprint_key
from gateway.audit.key_files import load_pseudonym_key, load_signing_key
from gateway.bank import Bank
from gateway.body import MAX_BODY_BYTES
from gateway.call import Stage
from gateway.children import die_with_parent
from gateway.consents.api import AccountAccessConsents, ConsentFiles, FundsConfirmationConsents, PaymentConsents
from gateway.consents.lifecycle import announce_authorisations
from gateway.consents.notify import SET_TYPE, Notifier, authorisation_notifier, outbox_notifier
from gateway.consents.payment_file import MAX_FILE_BYTES
from gateway.consents.payment_kinds import PAYMENT_KINDS
from gateway.crypto import derive_key, pseudonym
from gateway.errors import Refusal
from gateway.events.api import EVENTS, EVENTS_API, EventPolling, EventSubscriptions
from gateway.events.bank_feed import PaymentStatusFeed
from gateway.events.callbacks import CallbackGuard
from gateway.oauth.routes import oauth_routes
from gateway.oauth.server import build_authorization_server
from gateway.oauth.signing_keys import signer
from gateway.openapi_document import PATH as OPENAPI_DOCUMENT
from gateway.openapi_document import OpenApiDocument, build_document
from gateway.payments.answer_signature import SignAnswer
from gateway.pipeline import Pipeline, consent_api_stages, resource_stages
from gateway.pipeline.endpoint import ProxiedFirst, ResourceEndpoint
from gateway.pipeline.forward import Forward
from gateway.pipeline.identity import ProxyCertificateVerifier
from gateway.pipeline.middleware import (
    AnonymousThrottle,
    Audit,
    InteractionId,
    RefuseUnparsed,
    RenderErrors,
    TransportIdentity,
)
from gateway.pipeline.token import KeyCache
from gateway.policy import PolicySet, load_policy
from gateway.policy.model import CONSENT_API, FILE_SUFFIX
from gateway.settings import Settings
from gateway.store.admission import AdmissionStore
from gateway.store.audit import AuditReader
from gateway.store.events import EventStore
from gateway.store.idempotency import IdempotencyStore
from gateway.store.logins import LoginStore
from gateway.store.redis import async_client, sync_client
from gateway.store.vrp import SyncVrpUsage, VrpUsage
from gateway.usage import TPP_USAGE, TPP_USAGE_ROUTES, TppUsage
from gateway.web.authorize import CustomerAuthorization
from gateway.web.brand import Brand
from gateway.web.dashboard import Dashboard
from gateway.web.forms import SignedDoubleSubmit
from gateway.web.login import PasswordCheck

log = logging.getLogger("obgw")
LOGIN_NAMES = b"obgw login counter names v1"  # HKDF label: the key of the login guards' key names (store.logins)


async def _not_found(scope, receive, send) -> None:
    raise Refusal("route.not_found")


def create_app(settings: Settings, policy: PolicySet | None = None, *, chain_id: str | None = None):
    if not settings.redis_url:
        raise ValueError("create_app needs settings.redis_url: `obgw serve` starts the embedded Redis first")
    policy = policy or load_policy(settings.policy_dir, settings.service_urls)
    metrics.TPPS.limit = settings.metrics_tpp_series
    redis = async_client(settings.redis_url)
    sync_redis = sync_client(settings.redis_url)  # the authorization server's, used from Authlib's threads
    audit_signer = load_signing_key(settings.audit_signing_key_file)
    chain = AuditChain(redis, settings.var_dir / "audit" / "checkpoints.jsonl", chain_id=chain_id, signer=audit_signer,
                       shards=settings.audit_shards)
    # Audit retention: records older than the live window move to signed archive segments, then leave Redis.
    archiver = Archiver(sync_redis, settings.audit_archive_path, audit_signer, live_seconds=settings.audit_live_seconds,
                        keep_days=settings.audit_archive_keep_days, holder=f"archiver-{chain.chain_id}",
                        lease_seconds=max(60, 2 * settings.audit_archive_seconds)) \
        if settings.audit_live_seconds else None
    # One HMAC per customer and worker, not per call: customers are few next to calls.
    pseudonym_key = load_pseudonym_key(settings.audit_key_file)
    subject = functools.lru_cache(maxsize=65_536)(functools.partial(pseudonym, pseudonym_key))
    forward = Forward(policy)
    server = build_authorization_server(settings, sync_redis, live=redis)
    accounts = policy.services.get("accounts")
    bank = Bank(accounts.url if accounts else None)
    admission = AdmissionStore(redis)
    keys = KeyCache(admission, overlap=server.keys.overlap)
    idempotency = IdempotencyStore(redis)
    resources = Pipeline(resource_stages(policy, forward, server.verifier, keys, admission, server.issuer,
                                         clients=server.clients, consents=server.consents, idempotency=idempotency,
                                         ring=server.keys.ring, vrp=VrpUsage(redis), nonces=server.dpop_nonces,
                                         fingerprint_key=fingerprint_key(pseudonym_key)))
    notify = outbox_notifier(sync_redis)

    async def notification_url_of(client_id: str) -> str | None:
        document = await run_in_threadpool(server.clients.get, client_id)
        return document.get("notification_url") if document else None

    # Events (UK OB Events API): pushed to a subscription's CallbackUrl (SSRF-guarded) or polled; the customer's
    # authorisations and the bank's payment status changes published besides revocations.
    events, guard, sign_event = EventStore(redis), CallbackGuard(settings.events_allow_loopback), \
        signer(server.keys.ring, SET_TYPE)
    notifier = Notifier(redis, notification_url_of, sign_event, chain.append, issuer=server.issuer,
                        api_base=server.issuer, subscription_of=events.subscription, guard=guard)
    announce_authorisations(server.consents, authorisation_notifier(sync_redis))
    payments_service = policy.services.get("payments")
    bank_feed = PaymentStatusFeed(events, payments_service.url if payments_service else None)
    subscriptions = EventSubscriptions(events, guard, server.issuer)
    event_resources: dict[str, Stage] = {path: subscriptions for path in EVENTS_API} | {
        EVENTS: EventPolling(events, sign_event, chain.append, server.issuer, server.issuer)}
    consent_args = (server.consents, server.issuer, settings.consent_authorise_seconds, notify)
    payment_consents = [PaymentConsents(kind, *consent_args) for kind in PAYMENT_KINDS.values()]
    consent_resources = [AccountAccessConsents(*consent_args), FundsConfirmationConsents(*consent_args),
                         *payment_consents]
    resource_at: dict[str, Stage] = {path: resource for resource in consent_resources
                                     for path in (resource.base, resource.base + "/{ConsentId}")}
    resource_at |= {files.base: files for files in (ConsentFiles(resource, server.consents)
                                                    for resource in payment_consents if resource.payment.file)}

    payment_answers = SignAnswer(server.keys.ring, server.issuer, scope=None)

    def consent_api(path: str, scope: str, route_ids: Mapping[str, str]) -> Pipeline:
        return Pipeline(consent_api_stages(scope, server.verifier, keys, admission, policy, route_ids,
                                           resource_at[path], idempotency if scope == "payments" else None,
                                           server.clients, payment_answers if scope == "payments" else None,
                                           origin=server.issuer, nonces=server.dpop_nonces))
    passwords = PasswordCheck(bank, LoginStore(redis, derive_key(pseudonym_key, LOGIN_NAMES)))
    brand = Brand.load(settings.bank_name, settings.bank_logo)  # the customer pages' name and logo
    dashboard = Dashboard(server.store, server.consents, server.clients, bank, passwords,
                          SignedDoubleSubmit(pseudonym_key),
                          AuditReader(sync_redis).recent_accesses, notify, SyncVrpUsage(sync_redis).usage, brand=brand)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        chain.start()  # adopts the spools of workers that died before they could replay them
        await forward.start()
        await bank.start()
        await notifier.start()
        await bank_feed.start()
        anchoring = asyncio.create_task(_checkpoint_every(chain, settings.audit_checkpoint_seconds))
        archiving = asyncio.create_task(archive_every(archiver, settings.audit_archive_seconds)) if archiver else None
        beating = asyncio.create_task(heartbeat.beat(heartbeat.beats_dir(settings.var_dir), redis))  # /readyz
        try:
            yield
        finally:
            beating.cancel()
            anchoring.cancel()
            if archiving:
                archiving.cancel()
            await bank_feed.close()
            await notifier.close()
            await chain.close()
            await bank.close()
            await forward.close()
            await redis.aclose()
            sync_redis.close()

    # The consent API and Events share the /open-banking prefix with the proxied calls (the hot path), which
    # ProxiedFirst sends straight to their endpoint: under the prefix, Starlette routes only the claimed routes.
    claimed = [
        *(Route(path, ResourceEndpoint(consent_api(path, scope, route_ids), template=path,
                                       max_body_bytes=MAX_FILE_BYTES if path.endswith(FILE_SUFFIX) else MAX_BODY_BYTES))
          for path, (scope, route_ids) in CONSENT_API.items()),
        # The Events API: the client-credentials stages; its resources take a token of any of its scopes ("" here).
        *(Route(path, ResourceEndpoint(Pipeline(consent_api_stages(
            "", server.verifier, keys, admission, policy, route_ids, event_resources[path],
            signed_by=None if path == EVENTS else payment_answers, origin=server.issuer,
            nonces=server.dpop_nonces)), template=path))
          for path, route_ids in EVENTS_API.items()),
    ]
    proxied = ResourceEndpoint(resources)
    routes = [
        *claimed,
        # A TPP's own statement (issue 20): mTLS and a client-credentials token, as the consent API.
        Route(TPP_USAGE, ResourceEndpoint(Pipeline(consent_api_stages(
            "", server.verifier, keys, admission, policy, TPP_USAGE_ROUTES, TppUsage(redis, policy.plans),
            origin=server.issuer, nonces=server.dpop_nonces)), template=TPP_USAGE)),
        *oauth_routes(server, CustomerAuthorization(server, bank, passwords, settings.login_seconds, brand=brand),
                      policy.limits),
        *(Route(path, endpoint) for path, endpoint in dashboard.endpoints()),
        Route(OPENAPI_DOCUMENT, OpenApiDocument(build_document(policy, CONSENT_API, server.issuer))),
    ]
    router = Router(routes=routes, default=_not_found, redirect_slashes=False, lifespan=lifespan)
    dispatch = ProxiedFirst(router, "/open-banking/", proxied, claimed)
    verifier = ProxyCertificateVerifier(settings.client_ca) if settings.trusted_proxies else None
    app: ASGIApp = TransportIdentity(AnonymousThrottle(dispatch), settings.trusted_proxies, verifier)
    app = RefuseUnparsed(app)
    app = RenderErrors(app)
    app = Audit(app, store=metrics.timed_append(chain.append), observers=(metrics.observe,), subject=subject)
    app = InteractionId(app)
    return app


async def _checkpoint_every(chain: AuditChain, seconds: int) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await chain.checkpoint()
        except OSError:
            log.exception("could not write the audit checkpoint")


SUPERVISOR_PID = "OBGW_SUPERVISOR_PID"
STARTUP_FAILURE = 3  # uvicorn's supervisor stops instead of restarting a worker that exits with this code


def create_app_from_env():
    """uvicorn's factory in each worker process: `serve` has put every resolved setting into the environment.

    A worker must not outlive the main process (it would serve unaudited once the embedded Redis is gone), and a
    worker that cannot start must stop the gateway rather than be restarted in a loop.
    """
    die_with_parent()
    if os.getppid() != int(os.environ.get(SUPERVISOR_PID, os.getppid())):
        sys.exit(STARTUP_FAILURE)  # the parent died before prctl took effect
    try:
        return create_app(Settings.load())
    except Exception:
        log.exception("worker %s cannot start", os.getpid())
        sys.exit(STARTUP_FAILURE)
