"""Audit retention in a running gateway (issue 19 item 4): with a short live window, the workers archive the audit
records to signed segments and trim them from Redis on their own (one at a time, under a lease), and the CLI still
finds every call's record and verifies archive + live as one chain."""
from __future__ import annotations

import json

import pytest
import redis
from support.faults import wait_until
from support.gateway import bank_gateway, tpp_client
from support.tpp import access_token_for

from gateway.audit.archive import read_manifest
from gateway.store import names

pytestmark = pytest.mark.e2e

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"


def test_the_gateway_archives_and_trims_its_audit_log_and_the_cli_reads_and_verifies_both(tmp_path, pki, bank):
    gw = bank_gateway(tmp_path, pki, bank, OBGW_AUDIT_LIVE_SECONDS="1", OBGW_AUDIT_ARCHIVE_SECONDS="1")
    client = redis.Redis.from_url(gw.redis_url)
    try:
        token = access_token_for(gw, pki)
        ids = []
        with tpp_client(pki, token=token) as tpp:
            for _ in range(20):
                answer = tpp.get(gw.base + ACCOUNTS)
                assert answer.status_code in (200, 429)
                ids.append(answer.headers["x-fapi-interaction-id"])
        archive = tmp_path / "var" / "audit" / "archive"
        wait_until(lambda: not any(json.loads(fields[b"r"])["interaction_id"] in ids
                                   for _, fields in client.xrange(names.AUDIT_STREAM)), 20,
                   "the calls' records archived and trimmed from Redis")
        manifest = read_manifest(archive)
        assert manifest.segments and all(entry["sig"] for entry in manifest.entries)

        found = {record["interaction_id"] for record in gw.audit("--client", "tpp-demo")}
        assert set(ids) <= found
        done = gw.cli("audit", "verify")
        assert done.returncode == 0, done.stderr
        assert "audit log intact" in done.stdout and "segments verified against the manifest signed by" in done.stdout
        done = gw.cli("audit", "archive")  # the operator's command beside the workers': nothing left to do, or done
        assert done.returncode == 0, done.stderr
    finally:
        client.close()
        assert gw.stop() == 0
