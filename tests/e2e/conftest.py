from __future__ import annotations

import pytest

from support.ports import free_port
from support.processes import Process, python


@pytest.fixture(scope="module")
def backend():
    """The echo/slow/fail test back-end, a real HTTP server; yields its base URL."""
    process = Process(python("tests/support/backend.py"))
    port = int(process.wait_for_line("backend ready").split()[-1])
    yield f"http://127.0.0.1:{port}"
    process.stop()


def write_policy(directory, backend_url: str) -> None:
    """A policy routing to the test back-end, with a slow route, a failing one and a service nobody listens on."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "services.yaml").write_text(f"""format_version: 1
services:
  echo:
    url: {backend_url}
    timeout_ms: 5000
  dead:
    url: http://127.0.0.1:{free_port()}
    connect_timeout_ms: 500
""")
    (directory / "routes.yaml").write_text("""format_version: 1
routes:
  - id: ais.accounts.list
    method: GET
    path: /open-banking/v3.1/aisp/accounts
    service: echo
    upstream_path: /echo/accounts
  - id: ais.accounts.one
    method: GET
    path: /open-banking/v3.1/aisp/accounts/{AccountId}
    service: echo
    upstream_path: /echo/accounts/{AccountId}
    account_param: AccountId
  - id: pis.payments.create
    method: POST
    path: /open-banking/v3.1/pisp/domestic-payments
    service: echo
    upstream_path: /echo/payments
  - id: test.slow
    method: GET
    path: /open-banking/v3.1/test/slow
    service: echo
    upstream_path: /slow
    timeout_ms: 500
  - id: test.fail
    method: GET
    path: /open-banking/v3.1/test/fail
    service: echo
    upstream_path: /fail
  - id: test.teapot
    method: GET
    path: /open-banking/v3.1/test/teapot
    service: echo
    upstream_path: /status/418
  - id: test.down
    method: GET
    path: /open-banking/v3.1/test/down
    service: dead
""")


@pytest.fixture(scope="module")
def bank():
    """The sandbox bank (accounts and payments services) on free ports; yields (accounts_url, payments_url)."""
    process = Process(python("-m", "gateway.sandbox", "--accounts-port", "0", "--payments-port", "0"))
    words = process.wait_for_line("sandbox bank:").split()
    yield words[words.index("accounts") + 1], words[words.index("payments") + 1]
    process.stop()


def register_tpps(gateway, pki, names=("tpp-demo", "tpp-other")) -> None:
    """Register TPPs from their certs/dev-style JSON files, as `make demo` does."""
    for name in names:
        done = gateway.cli("clients", "add", name, "--from-json", str(pki / f"{name}.json"), "--replace")
        assert done.returncode == 0, done.stderr
