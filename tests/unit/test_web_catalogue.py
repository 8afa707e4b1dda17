"""The customer pages' one catalogue (web.catalogue): both languages say everything, and templates say nothing of
their own. Fails on a key missing in a language, a placeholder one language lacks, a key the code or a template
names that the catalogue lacks, or literal text in a template."""
from __future__ import annotations

import re
import string
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gateway.consents.control_parameters import PERIOD_TYPES
from gateway.consents.model import Status
from gateway.errors import PAGE_REASONS, REFUSAL_REASONS
from gateway.web import language
from gateway.web.catalogue import MESSAGES, text

WEB = Path(language.__file__).parent
TEMPLATES = sorted((WEB / "templates").glob("*.html"))
# A catalogue key as the code and templates name it: a literal "<family>.<name>" string.
FAMILIES = ("page", "format", "month", "currency", "login", "dashboard_login", "otp", "consent", "perm", "pay",
            "period", "period_this", "freq", "dash", "status", "access", "error", "reason")
KEY = re.compile(r"""["']((?:%s)\.[A-Za-z0-9_.-]+)(?<!\.html)["']""" % "|".join(FAMILIES))  # not a template
JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)
SPOKEN_ATTRIBUTES = ("alt", "title", "placeholder", "aria-label", "value")
OWN_FIELDS = {"format.date"}  # each language's date picks its own fields of the same call (a month's name or number)


def _placeholders(message: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(message) if name}


def test_both_languages_have_the_same_keys():
    english, chinese = set(MESSAGES["en"]), set(MESSAGES["zh-CN"])
    assert not english - chinese, f"missing in zh-CN: {sorted(english - chinese)}"
    assert not chinese - english, f"missing in en: {sorted(chinese - english)}"


@pytest.mark.parametrize("key", sorted(MESSAGES["en"]))
def test_each_translation_fills_the_same_placeholders_and_is_not_left_in_english(key):
    english, chinese = MESSAGES["en"][key], MESSAGES["zh-CN"][key]
    assert _placeholders(english) == _placeholders(chinese) or key in OWN_FIELDS, key
    assert english.strip() and chinese.strip()
    if re.search(r"[a-z]{3}", re.sub(r"{\w+}|[A-Z][A-Za-z_]*|GET|POST", "", english)) and key not in (
            "page.language_name", "format.money_code"):
        assert re.search(r"[\u4e00-\u9fff]", chinese), f"{key} is not translated: {chinese!r}"


def test_every_permission_status_period_frequency_and_page_reason_has_its_words():
    needed = {f"perm.{p}" for p in language.PERMISSIONS} | {f"status.{s}" for s in Status} | {"status.Expired"}
    needed |= {f"{family}.{p}" for p in PERIOD_TYPES for family in ("period", "period_this")}
    needed |= {f"reason.{reason}" for reason in PAGE_REASONS}
    assert not needed - set(MESSAGES["zh-CN"]) and not needed - set(MESSAGES["en"])


def test_the_english_page_refusals_are_the_audited_catalogues_own_texts():
    assert all(text("en", f"reason.{r}") == shown.message for r, shown in PAGE_REASONS.items())


@pytest.mark.parametrize("source", [*sorted(WEB.glob("*.py")), *TEMPLATES], ids=lambda p: p.name)
def test_every_key_the_code_or_a_template_names_is_in_the_catalogue(source):
    named = set(KEY.findall(source.read_text())) - REFUSAL_REASONS  # an audit reason id is no catalogue key
    assert not named - set(MESSAGES["en"]), f"{source.name} names keys the catalogue lacks"


class _LiteralText(HTMLParser):
    """Text a template shows of its own: letters outside Jinja expressions, in text or in a spoken attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_data(self, data: str) -> None:
        self._check(data)

    def handle_starttag(self, tag, attrs) -> None:
        self.found += [f"{tag} {name}={value!r}" for name, value in attrs
                       if name in SPOKEN_ATTRIBUTES and value and re.search(r"[^\W\d_]", value)
                       and not (tag == "button" and name == "value")]  # a button's value is a form field's

    def _check(self, data: str) -> None:
        if re.search(r"[^\W\d_]", data):
            self.found.append(data.strip())


def literal_text(template: str) -> list[str]:
    parser = _LiteralText()
    parser.feed(JINJA.sub("", template))
    return [found for found in parser.found if found.lower() != "doctype html"]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_no_template_holds_text_of_its_own(template):
    assert literal_text(template.read_text()) == []


@pytest.mark.parametrize("bad", [
    "<p>Hello {{ name }}</p>", "<img alt='Bank logo' src='{{ x }}'>", "<p>{{ t('a') }} 您好</p>",
    "<input aria-label='Code'>", "<title>{% block title %}{% endblock %} Bank</title>"])
def test_the_literal_text_check_finds_words_in_text_and_spoken_attributes(bad):
    assert literal_text(bad)


def test_the_literal_text_check_lets_keys_punctuation_and_form_values_through():
    assert literal_text("<p>({{ t('status.Revoked') }}) | <button name='decision' value='approve'>"
                        "{{ t('consent.approve') }}</button></p>") == []
