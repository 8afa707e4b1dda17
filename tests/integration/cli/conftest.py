"""The CLI configured as on the gateway's host: its PKI directory (the audit keys an operator's record is signed
with) and a state directory of the test's own (where that record's checkpoint goes), unless a test says otherwise."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _operator_host(monkeypatch, pki, tmp_path):
    monkeypatch.setenv("OBGW_CLIENT_CA", str(pki / "ca.pem"))
    monkeypatch.setenv("OBGW_VAR_DIR", str(tmp_path / "var"))
