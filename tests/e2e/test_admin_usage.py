"""The admin usage page (issue 20 part 3) over real calls through `obgw serve` with two workers: each TPP's calls and
billable calls per API product month by month, as inline SVG charts and a table, priced as `obgw usage report`
prices them; linked from the overview; bad parameters answered 400 with a message."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urlencode

import httpx
import pytest
from support.gateway import tpp_client
from support.tpp import ACCOUNTS, Tpp

pytestmark = pytest.mark.e2e

PASSWORD = "usage-charts-pw"
BALANCES = ACCOUNTS + "/{}/balances"
BENEFICIARIES = ACCOUNTS + "/acc-alice-current/beneficiaries"


class Tables(HTMLParser):
    """Each table's rows (cell texts) under its caption."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._caption: str | None = None
        self._cell: list[str] | None = None
        self._in_caption = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        if tag == "caption":
            self._in_caption, self._caption = True, ""
        elif tag == "tr" and self._caption is not None:
            self.tables.setdefault(self._caption, []).append([])
        elif tag in ("td", "th") and self._caption is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "caption":
            self._in_caption = False
        elif tag in ("td", "th") and self._cell is not None and self._caption is not None:
            self.tables[self._caption][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._caption = None

    def handle_data(self, data):
        if self._in_caption:
            self._caption = (self._caption or "") + data
        elif self._cell is not None:
            self._cell.append(data)


def _month() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m")


def _months_back(count: int) -> str:
    now = datetime.now(timezone.utc)
    index = now.year * 12 + now.month - 1 - count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _lines(page: str, client_id: str) -> dict[str, dict[str, str]]:
    """This month's statement lines on the page, by product, and its `total` row."""
    rows = Tables(page).tables[f"{client_id}: statement lines per month (products called)"]
    header = rows[0]
    found = {}
    for row in rows[1:]:
        if row[0] == _month():
            found[row[2]] = dict(zip(header, row, strict=True))
    return found


def _bars(page: str, label: str) -> list[int]:
    """The values of the bars (their <title>s) of the chart named `label`."""
    svg = re.search(r'<svg [^>]*role="img" aria-label="' + re.escape(label) + r'">(.*?)</svg>', page, re.S)
    assert svg, f"no chart {label!r}"
    return [int(value) for value in re.findall(r"<title>(\d+)</title>", svg.group(1))]


@pytest.fixture(scope="module")
def admin(gateway):
    done = subprocess.run([sys.executable, "-m", "gateway", "admin", "password"], env=gateway.env,
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.admin_port}", auth=("admin", PASSWORD), timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def traffic(gateway, pki):
    """tpp-demo on the `volume` plan: 5 account reads, 2 refused balance reads (an account not granted), 3
    beneficiary reads; tpp-other: 4 account reads."""
    assert gateway.cli("clients", "set-plan", "tpp-demo", "volume").returncode == 0
    tokens = {}
    for name, permissions in (("tpp-demo", ["ReadAccountsBasic", "ReadBalances", "ReadBeneficiariesBasic"]),
                              ("tpp-other", ["ReadAccountsBasic"])):
        tpp = Tpp(gateway.base, pki, name)
        try:
            tokens[name] = tpp.consent_token(permissions, accounts=["acc-alice-current"])["access_token"]
        finally:
            tpp.close()
    with tpp_client(pki, "tpp-demo", tokens["tpp-demo"]) as http:
        statuses = [http.get(gateway.base + path).status_code
                    for path in [ACCOUNTS] * 5 + [BALANCES.format("acc-bob-current")] * 2 + [BENEFICIARIES] * 3]
    assert statuses == [200] * 5 + [403] * 2 + [200] * 3
    with tpp_client(pki, "tpp-other", tokens["tpp-other"]) as http:
        assert [http.get(gateway.base + ACCOUNTS).status_code for _ in range(4)] == [200] * 4


def test_the_usage_page_shows_each_tpps_calls_and_billable_calls_per_product_as_charts_and_a_table(
        gateway, admin, traffic):
    page = admin.get("/admin/usage")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text.lower()
    demo = _lines(page.text, "tpp-demo")
    assert (demo["accounts"]["calls"], demo["accounts"]["billable"], demo["accounts"]["refused"]) == ("7", "5", "2")
    assert (demo["account-details"]["calls"], demo["account-details"]["billable"]) == ("3", "3")
    other = _lines(page.text, "tpp-other")
    assert (other["accounts"]["calls"], other["accounts"]["billable"]) == ("4", "4")
    assert "account-details" not in other  # a product it never called has no line

    months = f"from {_months_back(5)} to {_month()}"
    # The month's bar: every call, and over it the billable ones; the five months before had none.
    assert _bars(page.text, f"accounts calls of tpp-demo per month {months}") == [7, 5]
    assert _bars(page.text, f"account-details calls of tpp-demo per month {months}") == [3, 3]
    assert _bars(page.text, f"accounts calls of tpp-other per month {months}") == [4, 4]
    assert page.text.index("<h2 id=\"tpp-1\">tpp-demo</h2>") < page.text.index("tpp-other</h2>")  # busiest first


def test_the_usage_page_prices_each_month_as_the_usage_report_does(gateway, admin, traffic):
    done = gateway.cli("usage", "report", "--client", "tpp-demo", "--month", _month(), "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    page = admin.get("/admin/usage", params={"client_id": "tpp-demo", "months": "1"}).text
    shown = _lines(page, "tpp-demo")
    assert report["plan"] == "volume" and "Plan <strong>volume</strong>" in page
    for line in report["lines"]:
        if line["calls"]:
            assert shown[line["product"]]["amount"] == line["amount"]
            assert shown[line["product"]]["unit price"] == line["unit_price"]
    # volume: 0.0005 a billable read, no free allowance
    assert Decimal(shown["accounts"]["amount"]) == Decimal("0.0025")
    assert Decimal(shown["account-details"]["amount"]) == Decimal("0.0015")
    assert shown["total"]["amount"] == f"{report['total']} GBP" and Decimal(report["total"]) == Decimal("0.0040")
    assert "tpp-other" not in page  # one TPP asked for, one shown


def test_earlier_months_across_a_year_end_show_no_usage_where_there_was_none(admin, traffic):
    page = admin.get("/admin/usage", params={"until": "2020-02", "months": "3"})
    assert page.status_code == 200
    assert "Metered calls per UTC month, 2019-12 to 2020-02" in page.text
    assert "No metered calls in these months from: tpp-demo, tpp-other." in page.text
    assert "<svg" not in page.text and "statement lines" not in page.text


def test_the_overview_links_each_tpp_to_its_usage(admin, traffic):
    overview = admin.get("/admin")
    assert overview.status_code == 200
    assert 'href="/admin/usage?client_id=tpp-demo"' in overview.text
    assert 'href="/admin/usage"' in overview.text


@pytest.mark.parametrize(("params", "message"), [
    ({"months": "0"}, "months: a whole number from 1 to 24"),
    ({"months": "many"}, "months: a whole number from 1 to 24"),
    ({"until": "2026-13"}, "until: not a month (YYYY-MM)"),
    ({"client_id": "<b>nobody</b>"}, "client_id: no registered client"),
])
def test_a_bad_parameter_is_answered_400_with_what_is_wrong(admin, params, message):
    answer = admin.get("/admin/usage?" + urlencode(params))
    assert answer.status_code == 400 and message in answer.text
    assert answer.headers["content-type"].startswith("text/plain")
