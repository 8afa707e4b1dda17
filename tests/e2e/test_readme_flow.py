"""The README's "Try it" flow, pasted into bash as a newcomer would, against a running gateway: it must stay true."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from support.gateway import Gateway, gateway_env
from support.processes import ROOT

pytestmark = pytest.mark.e2e


def _readme_flow() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Try it"):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README flow uses curl")
def test_the_readme_tpp_flow_reads_alices_accounts(tmp_path, pki, bank):
    gw = Gateway(gateway_env(tmp_path / "var", pki, ROOT / "policies", OBGW_SERVICE_ACCOUNTS_URL=bank[0],
                             OBGW_SERVICE_PAYMENTS_URL=bank[1]), workers=1)
    try:
        gw.register_tpps(pki)
        script = _readme_flow().replace("https://127.0.0.1:8443", gw.base).replace("certs/dev/", f"{pki}/")
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60,
                              cwd=tmp_path)
    finally:
        assert gw.stop() == 0
    assert done.returncode == 0, done.stderr
    assert '"AccountId":"acc-alice-current"' in done.stdout
    # What the README promises: the one account alice chose, without its identification (ReadAccountsBasic only).
    assert "acc-alice-savings" not in done.stdout and "Identification" not in done.stdout
