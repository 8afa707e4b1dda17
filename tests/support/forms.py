"""Reading the customer pages as a browser would: the forms, their action, hidden fields and choices."""
from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    action: str
    method: str
    hidden: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)          # names of text/password inputs
    choices: dict[str, list[str]] = field(default_factory=dict)  # checkbox/radio name → values
    buttons: dict[str, list[str]] = field(default_factory=dict)  # submit button name → values


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif not self.forms:
            return
        elif tag == "input":
            kind, name = a.get("type", "text"), a.get("name")
            if kind == "hidden":
                self.forms[-1].hidden[name] = a.get("value", "")
            elif kind in ("checkbox", "radio"):
                self.forms[-1].choices.setdefault(name, []).append(a.get("value", ""))
            elif name:
                self.forms[-1].inputs.append(name)
        elif tag == "button" and a.get("name"):
            self.forms[-1].buttons.setdefault(a["name"], []).append(a.get("value", ""))


def forms(html: str) -> list[Form]:
    parser = _Parser()
    parser.feed(html)
    return parser.forms


def only_form(html: str) -> Form:
    found = forms(html)
    assert len(found) == 1, f"expected one form, found {len(found)}:\n{html}"
    return found[0]
