"""axe-core (Deque's accessibility rules engine, MPL-2.0) run inside the browser tests' Chromium on a page as served.

The engine is the pinned npm release, fetched once into the virtualenv with its SHA-256 checked (`make test` runs
`python tests/support/axe.py`; no Node is needed, the tarball holds a ready `axe.min.js`). The tests hand it to
Chromium as a script to run in every new document (DevTools `Page.addScriptToEvaluateOnNewDocument`), so the pages'
own CSP, which allows no script, stays as served: DevTools-injected scripts are not subject to it.

Only the WCAG 2.0, 2.1 and 2.2 level A and AA rules run (axe's tags below): best-practice rules are advice, not law.
"""
from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "4.14.1"
SHA256 = "e6b0ce02b84d892e2e33e403485e7f3d6c29e2be6df65daf44d89ba564139745"  # of the npm tarball
TARBALL = f"https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz"
SCRIPT = Path(sys.prefix) / "share" / f"axe-core-{VERSION}" / "axe.min.js"
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa")
MISSING = (f"axe-core {VERSION} is missing ({SCRIPT}): run `make test`, or `.venv/bin/python tests/support/axe.py` "
           "to fetch it")

# axe.run with only the WCAG A/AA rules; resolves to the violations alone (passes and the rest are not sent back).
_RUN = """
const done = arguments[arguments.length - 1];
if (!window.axe) { done({error: "axe-core was not injected into " + location.href}); return; }
axe.run(document, {runOnly: {type: "tag", values: arguments[0]}, resultTypes: ["violations"]})
  .then(result => done({violations: result.violations.map(v => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary}))}))}))
  .catch(error => done({error: String(error)}));
"""


def missing() -> str | None:
    """What to run when axe-core is not installed, else None."""
    return None if SCRIPT.is_file() else MISSING


def fetch() -> Path:
    """Download the pinned tarball, check its SHA-256, and keep its `axe.min.js` (and licence) at SCRIPT."""
    with urllib.request.urlopen(TARBALL, timeout=60) as response:
        tarball = response.read()
    digest = hashlib.sha256(tarball).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{TARBALL}: SHA-256 {digest}, expected {SHA256}: not installed")
    SCRIPT.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name in ("LICENSE", "axe.min.js"):  # the script last: its presence means the whole install is there
            member = archive.extractfile(f"package/{name}")
            if member is None:
                raise SystemExit(f"{TARBALL}: no package/{name}")
            partial = SCRIPT.parent / f".{name}.partial"
            partial.write_bytes(member.read())
            partial.replace(SCRIPT.parent / name)
    return SCRIPT


def inject_into_every_page(driver) -> None:
    """Have Chromium run axe-core in every document it loads from now on, before the page's own content."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SCRIPT.read_text()})


def violations(driver) -> list[dict]:
    """The WCAG A/AA violations on the page the browser shows: [{id, impact, help, nodes: [{target, summary}]}]."""
    outcome = driver.execute_async_script(_RUN, list(TAGS))
    if "error" in outcome:
        raise AssertionError(f"axe-core could not run: {outcome['error']}")
    return outcome["violations"]


def report(found: list[dict]) -> str:
    """Violations as a reviewer reads them: rule id, impact and help, then each element and what fails there."""
    lines = []
    for violation in found:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        lines += [f"    {node['target']}: {' '.join(node['summary'].split())}" for node in violation["nodes"]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(fetch() if missing() else SCRIPT)
