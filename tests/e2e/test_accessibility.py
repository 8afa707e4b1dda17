"""A customer who uses no mouse: a consent given and a consent withdrawn in headless Chromium with the keys Tab,
Shift+Tab, Enter and Space alone (and typing into the fields), every control reached in the page's order, on screen
and showing where the focus is (WCAG 2.1.1 Keyboard, 2.4.3 Focus Order, 2.4.7 Focus Visible, 2.4.11 Focus Not
Obscured); and a wrong password or one-time code announced and tied to its field (WCAG 3.3.1 Error Identification,
4.1.3 Status Messages).

Focus is visible when the focused control's outline, shadow, border, background, colour or underline differs from
the same control's unfocused look, read before the first key press (a control focused on arrival instead needs an
outline or a shadow of its own).
"""
from __future__ import annotations

import pytest
from support import axe, chromium
from support.authenticator import one_time_code, wrong_code
from support.tpp import ACCOUNTS

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CALLBACK = "https://tpp.example.com/callback"
MOST_TABS = 120  # a page whose control is further than this is not usable by keyboard anyway
FOCUSABLE = ("a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select:not([disabled]), "
             "textarea:not([disabled]), summary, [tabindex]:not([tabindex='-1'])")
# The styles that can show focus, and the unfocused look of every focusable control (read before any key press).
_LOOK = """
window.obgwLook = el => { const s = getComputedStyle(el); return [s.outlineStyle, s.outlineWidth, s.outlineColor,
  s.outlineOffset, s.boxShadow, s.borderTopColor, s.borderTopWidth, s.backgroundColor, s.color,
  s.textDecorationLine].join("|"); };
window.obgwUnfocused = new Map([...document.querySelectorAll(arguments[0])]
  .filter(el => el !== document.activeElement).map(el => [el, obgwLook(el)]));
"""
# Where the focus is: the control's place in the page's order, whether it matches `arguments[0]`, whether its focus
# shows, and whether the control itself is on screen and not covered (WCAG 2.4.11 Focus Not Obscured).
_FOCUS = """
const el = document.activeElement, all = [...document.querySelectorAll(arguments[1])];
const s = getComputedStyle(el), before = window.obgwUnfocused.get(el);
const ring = (s.outlineStyle !== "none" && s.outlineWidth !== "0px") || s.boxShadow !== "none";
const box = el.getBoundingClientRect(), x = box.left + box.width / 2, y = box.top + box.height / 2;
const hit = document.elementFromPoint(x, y);
const seen = !!hit && (el.contains(hit) || hit.contains(el) || [...(el.labels || [])].some(l => l.contains(hit)));
return {index: all.indexOf(el), target: el.matches(arguments[0]), visible: before ? obgwLook(el) !== before : ring,
        seen: seen, html: el.outerHTML.slice(0, 160)};
"""


@pytest.fixture
def keyboard(tmp_path, pki, monkeypatch):
    chromium.need(chromium.missing(), axe.missing())
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager never downloads anything
    driver = chromium.customer_browser(tmp_path / "chromium", pki)
    try:
        axe.inject_into_every_page(driver)
        chromium.set_width(driver, chromium.DESKTOP)
        yield Keyboard(driver)
    finally:
        driver.quit()


class Keyboard:
    """The customer's keyboard on the page the browser shows."""

    def __init__(self, driver) -> None:
        self.driver = driver

    def press(self, *keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(*keys).perform()

    def shift_tab(self) -> None:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        ActionChains(self.driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()

    def arrive(self, selector: str, what: str) -> None:
        """Wait for the page that has `selector`, then note its controls' unfocused look."""
        chromium.wait_for(self.driver, selector, what)
        self.driver.execute_script(_LOOK, FOCUSABLE)

    def focus(self, selector: str) -> dict:
        return self.driver.execute_script(_FOCUS, selector, FOCUSABLE)

    def tab_to(self, selector: str, opener=None) -> None:
        """Tab forward until the control matching `selector` has the focus, each control on the way coming later in
        the page than the one before and showing its focus; `opener` (the element of a disclosure that hides the
        target, if any) is opened with Enter on the way."""
        from selenium.webdriver.common.keys import Keys

        last = -1
        for _ in range(MOST_TABS):
            self.press(Keys.TAB)
            now = self.focus(selector)
            assert now["index"] >= 0, f"the focus left the page before reaching {selector}: {now['html']}"
            assert now["index"] > last, f"the focus went back to {now['html']} before reaching {selector}"
            assert now["visible"], f"no visible focus on {now['html']} at {self.driver.current_url}"
            assert now["seen"], f"the focused {now['html']} is hidden or covered at {self.driver.current_url}"
            last = now["index"]
            if now["target"]:
                return
            if opener is not None and self.driver.execute_script("return document.activeElement === arguments[0]",
                                                                 opener):
                self.press(Keys.ENTER)
                self.driver.execute_script(_LOOK, FOCUSABLE)  # what the disclosure showed has an unfocused look too
        pytest.fail(f"{selector} not reached with {MOST_TABS} presses of Tab at {self.driver.current_url}")

    def type_into(self, selector: str, text: str) -> None:
        self.tab_to(selector)
        self.press(text)

    def log_in(self, pki, then: str) -> None:
        """Password, then the one-time code if asked, by keyboard; until `then` shows."""
        from selenium.webdriver.common.keys import Keys

        self.arrive(chromium.LOGIN_FORM, "login form")
        self.type_into(f"{chromium.LOGIN_FORM} input[name=username]", "alice")
        self.type_into(f"{chromium.LOGIN_FORM} input[name=password]", "alice-pass")
        self.tab_to(chromium.submit_of(chromium.LOGIN_FORM))
        self.press(Keys.ENTER)
        if chromium.asks_for_code_or(self.driver, then):
            self.arrive(chromium.CODE_FORM, "one-time code form")
            self.type_into(f"{chromium.CODE_FORM} input[name=otp]", one_time_code(pki, "alice"))
            self.tab_to(chromium.submit_of(chromium.CODE_FORM))
            self.press(Keys.SPACE)


def test_a_consent_is_given_with_the_keyboard_alone(gateway, module_tpp, pki, keyboard):
    from selenium.webdriver.common.keys import Keys

    consent_id = module_tpp.create_consent(["ReadAccountsBasic", "ReadBalances"])["ConsentId"]
    url, pushed = chromium.authorization_url(module_tpp, consent_id, "accounts")
    keyboard.driver.get(url)
    keyboard.log_in(pki, then=chromium.CONSENT_FORM)

    keyboard.arrive(chromium.CONSENT_FORM, "consent page")
    first_account = f"{chromium.CONSENT_FORM} input[name=account_ids]"
    keyboard.tab_to(first_account)
    keyboard.press(Keys.SPACE)
    assert keyboard.driver.find_element("css selector", first_account).is_selected()
    approve = f"{chromium.CONSENT_FORM} button[name=decision][value=approve]"
    keyboard.tab_to(f"{chromium.CONSENT_FORM} button[name=decision][value=deny]")
    keyboard.shift_tab()  # back from the refusal to the approval, the order reversed
    assert keyboard.focus(approve)["target"], "Shift+Tab from the refusal did not reach the approval"
    keyboard.press(Keys.ENTER)

    params = chromium.redirected_to(keyboard.driver, CALLBACK)
    assert set(params) == {"code", "state", "iss"}, params
    token = module_tpp.exchange(params["code"], pushed.code_verifier)
    assert len(module_tpp.get(ACCOUNTS, token).json()["Data"]["Account"]) == 1  # the one account ticked with Space


def test_a_consent_is_withdrawn_with_the_keyboard_alone(gateway, module_tpp, pki, keyboard):
    from selenium.webdriver.common.keys import Keys

    token = module_tpp.consent_token(["ReadAccountsBasic"], accounts=["acc-alice-current"])
    form = chromium.revoke_form(token["consent_id"])
    keyboard.driver.get(f"{gateway.base}/login")
    keyboard.log_in(pki, then=form)

    keyboard.arrive(form, f"withdrawal form of {token['consent_id']}")
    keyboard.tab_to(chromium.submit_of(form), opener=chromium.disclosure_of(keyboard.driver, form))
    keyboard.press(Keys.ENTER)
    chromium.wait(keyboard.driver, lambda d: not chromium.shows(d, form), "the consent can still be withdrawn")
    assert module_tpp.get(ACCOUNTS, token).status_code == 403


@pytest.mark.parametrize("wrong", ["password", "otp"])
def test_a_wrong_password_or_code_is_announced_and_tied_to_its_field(gateway, module_tpp, pki, keyboard, wrong):
    from selenium.webdriver.support.expected_conditions import staleness_of

    driver = keyboard.driver
    consent_id = module_tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
    driver.get(chromium.authorization_url(module_tpp, consent_id, "accounts")[0])
    if wrong == "password":
        form = chromium.LOGIN_FORM
        chromium.wait_for(driver, f"{form} input[name=username]", "login form").send_keys("alice")
        driver.find_element("css selector", f"{form} input[name=password]").send_keys("not-alices")
    else:
        form = chromium.CODE_FORM
        chromium.enter_password(driver, "alice")
        chromium.wait_for(driver, f"{form} input[name=otp]", "one-time code form").send_keys(wrong_code(pki, "alice"))
    asked = driver.find_element("css selector", form)
    chromium.submit_button(driver, form).click()
    chromium.wait(driver, staleness_of(asked), "the wrong answer was not answered with a page")

    announced = "[role=alert], [aria-live=assertive], [aria-live=polite], [role=status]"
    message = chromium.wait_for(driver, announced, "error announced to screen readers").text
    assert message.strip(), "the announced error says nothing"
    tied = driver.execute_script("""
        return [...document.querySelectorAll(arguments[0] + " input[aria-invalid=true]")].map(input =>
          (input.getAttribute("aria-describedby") || "").split(/\\s+/).filter(Boolean)
            .map(id => (document.getElementById(id) || {}).textContent || "").join(" ").trim());""", form)
    assert tied and all(tied), f"no field of {form} marked aria-invalid and described by the error: {tied}"
    found = axe.violations(driver)
    assert not found, axe.report(found)
