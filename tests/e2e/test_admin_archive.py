"""The admin pages read the audit archive (issue 19 item 4): with a one-second live window the workers move the
records to signed segments and trim them from Redis, and the records page and the overview still show every call,
as `obgw audit search` does."""
from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
import redis
from support.faults import wait_until
from support.gateway import bank_gateway, tpp_client
from support.tpp import ACCOUNTS, access_token_for

from gateway.store.audit import AuditReader

pytestmark = pytest.mark.e2e

PASSWORD = "archive-pages-pw"


def _in_redis(client: redis.Redis, ids: list[str]) -> bool:
    """Whether any of the calls' records is still in the live stream."""
    return any(record["interaction_id"] in ids for _, record in AuditReader(client).records())


def test_the_records_page_and_the_overview_show_records_archived_out_of_redis(tmp_path, pki, bank):
    gw = bank_gateway(tmp_path, pki, bank, OBGW_AUDIT_LIVE_SECONDS="1", OBGW_AUDIT_ARCHIVE_SECONDS="1")
    client = redis.Redis.from_url(gw.redis_url)
    try:
        done = subprocess.run([sys.executable, "-m", "gateway", "admin", "password"], env=gw.env,
                              input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        token = access_token_for(gw, pki)
        with tpp_client(pki, token=token) as tpp:
            ids = [tpp.get(gw.base + ACCOUNTS).headers["x-fapi-interaction-id"] for _ in range(20)]
        wait_until(lambda: not _in_redis(client, ids), 20, "the calls' records archived and trimmed from Redis")

        with httpx.Client(base_url=f"http://127.0.0.1:{gw.admin_port}", auth=("admin", PASSWORD),
                          timeout=30) as admin:
            page = admin.get("/admin/records", params={"client_id": "tpp-demo"})
            assert page.status_code == 200
            assert all(interaction in page.text for interaction in ids)
            assert page.text.index(ids[-1]) < page.text.index(ids[0])  # newest first, across archive and live

            overview = admin.get("/admin")
            assert overview.status_code == 200
        row = re.search(r'client_id=tpp-demo">tpp-demo</a></td>\s*<td>(\d+)</td>', overview.text)
        assert row, "tpp-demo is not in the overview's table"
        calls = [record for record in gw.audit("--client", "tpp-demo") if not record.get("operator")]
        assert int(row.group(1)) == len(calls) >= 20  # every call of the TPP's (not `obgw clients add`), as the CLI
        assert "calls per hour of tpp-demo" in overview.text
    finally:
        client.close()
        assert gw.stop() == 0
