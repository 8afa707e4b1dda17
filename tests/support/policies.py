"""Policy directories written for e2e tests."""
from __future__ import annotations

from support.ports import free_port


def write_policy(directory, backend_url: str, accounts_url: str) -> None:
    """A policy routing to the test back-end, with a slow route, a failing one and a service nobody listens on;
    `accounts` (the sandbox bank) is there for the customer's login at the authorization endpoint."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "services.yaml").write_text(f"""format_version: 1
services:
  echo:
    url: {backend_url}
    timeout_ms: 5000
  dead:
    url: http://127.0.0.1:{free_port()}
    connect_timeout_ms: 500
  accounts:
    url: {accounts_url}
""")
    (directory / "routes.yaml").write_text("""format_version: 1
routes:
  - id: ais.accounts.list
    method: GET
    path: /open-banking/v3.1/aisp/accounts
    service: echo
    scope: accounts
    pass_through: true
    upstream_path: /echo/accounts
  - id: ais.accounts.one
    method: GET
    path: /open-banking/v3.1/aisp/accounts/{AccountId}
    service: echo
    scope: accounts
    pass_through: true
    upstream_path: /echo/accounts/{AccountId}
  - id: pis.payments.create
    method: POST
    path: /open-banking/v3.1/pisp/domestic-payments
    service: echo
    scope: accounts
    pass_through: true
    upstream_path: /echo/payments
  - id: test.slow
    method: GET
    path: /open-banking/v3.1/test/slow
    service: echo
    scope: accounts
    pass_through: true
    upstream_path: /slow
    timeout_ms: 500
  - id: test.fail
    method: GET
    path: /open-banking/v3.1/test/fail
    service: echo
    scope: accounts
    pass_through: true
    upstream_path: /fail
  - id: test.teapot
    method: GET
    path: /open-banking/v3.1/test/teapot
    service: echo
    scope: accounts
    pass_through: true
    upstream_path: /status/418
  - id: test.down
    method: GET
    path: /open-banking/v3.1/test/down
    service: dead
    scope: accounts
    pass_through: true
""")
