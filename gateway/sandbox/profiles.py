"""Who the sandbox bank's customers are and how they live: what the seeded history and records are made from.

Nothing here is random; `gateway.sandbox.data` walks these profiles with a seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Customer:
    customer_id: str
    username: str
    display_name: str


@dataclass(frozen=True)
class Person:
    """Party details (OBParty2) of someone who holds an account here."""

    party_id: str
    name: str
    full_legal_name: str
    email: str
    mobile: str


@dataclass(frozen=True)
class Household:
    """Where the customer lives, with the partner they hold their savings account with."""

    partner: Person  # banks here through the joint savings account only: no login of their own
    building: str
    street: str
    town: str
    county: str
    post_code: str
    phone: str  # the home landline
    contribution: int  # pence the partner pays into the joint savings the day after the customer's payday


@dataclass(frozen=True)
class Offer:
    account: str  # kind of account it is made on: current, savings, card
    offer_type: str  # OB OfferType
    description: str
    amount: int  # pence
    fee: int  # pence
    rate: str  # percent
    term: str
    days: tuple[int, int]  # valid from..to, in days after the anchor
    slug: str  # of its page on the bank's web site


@dataclass(frozen=True)
class Profile:
    customer: Customer
    password: str  # published demo password; only its scrypt digest is kept
    # Published demo authenticator secret (RFC 6238 TOTP, base32 of 160 bits as RFC 4226 §4 asks): fixed, so
    # `obgw certs init` can write it to certs/dev/customers.json for whoever plays the customer.
    totp_secret: str
    person: Person
    household: Household
    employer: str
    salary: int  # pence a month
    payday: int
    landlord: str
    rent: int
    bills: tuple[tuple[str, str, int, int, int], ...]  # payee, reference, lowest, highest pence, day
    opening: dict[str, tuple[int, int]]  # account kind -> (lowest, highest) opening pence
    overdraft: int
    card_limit: int  # 0: no credit card
    savings_rate_bp: int  # annual interest in basis points
    sweep: int  # moved to savings the day after payday
    friends: tuple[str, ...]
    nicknames: dict[str, str]
    scheduled: tuple[tuple[str, str, int, int], ...]  # future payments: payee, reference, pence, days after anchor
    offers: tuple[Offer, ...]
    chips_in: tuple[str, int, int, str] | None = None  # standing order to customer id: pence, day of month, reference
    store_card: tuple[str, str, int, int] | None = None  # a card elsewhere paid by standing order: issuer, reference,
    # pence, day of month


PROFILES = (
    Profile(
        customer=Customer("alice", "alice", "Alice Smith"),
        password="alice-pass",
        totp_secret="5MJI5Y6SQBOKRN3Q3JCWJNJ2DJNLRC7G",
        person=Person("pty-alice-smith", "Alice Smith", "Alice Mary Smith", "alice.smith@example.com",
                      "+44-7700900123"),
        household=Household(
            partner=Person("pty-daniel-reid", "Daniel Reid", "Daniel James Reid", "daniel.reid@example.com",
                           "+44-7700900781"),
            building="14", street="Albert Street", town="London", county="Greater London", post_code="NW1 7NB",
            phone="+44-2079460958", contribution=30000,
        ),
        employer="Northwind Analytics Ltd",
        salary=318042,
        payday=25,
        landlord="Harbour Lettings Ltd",
        rent=132500,
        bills=(
            ("London Borough of Camden", "COUNCIL TAX", 17650, 17650, 5),
            ("Octopus Energy", "ENERGY", 8000, 12500, 12),
            ("Vodafone Ltd", "MOBILE", 2600, 2600, 18),
            ("Thames Water", "WATER", 3900, 3900, 22),
        ),
        # A cushion: she spends a little more than she earns, and however the months fall she starts with at least
        # 10,000 GBP available in the current account (tests/unit/sandbox/test_sandbox_data.py walks the anchors).
        opening={"current": (1750000, 1850000), "savings": (800000, 1200000), "card": (-60000, -20000)},
        overdraft=50000,
        card_limit=350000,
        savings_rate_bp=410,
        sweep=40000,
        friends=("Charlotte Evans", "Priya Patel", "Tom Hughes"),
        nicknames={"current": "Everyday", "savings": "Rainy day", "card": "Travel card"},
        scheduled=(
            ("Priya Patel", "HOLIDAY DEPOSIT", 25000, 9),
            ("John Lewis Partnership Card", "JOHN LEWIS CARD", 12000, 5),
            ("Tom Hughes", "WEDDING GIFT", 7500, 23),
        ),
        offers=(
            Offer("card", "BalanceTransfer", "0% on balance transfers for 18 months", 280000, 8400, "0",
                  "0% for 18 months on balances transferred within 60 days, then 24.9% APR variable; 3% fee",
                  (-7, 53), "balance-transfer"),
        ),
        store_card=("John Lewis Partnership Card", "JOHN LEWIS CARD", 7500, 20),
    ),
    Profile(
        customer=Customer("bob", "bob", "Bob Jones"),
        password="bob-pass",
        totp_secret="KPKG5N5E2OFXVMH7VL5ENK3DSQGQWNFP",
        person=Person("pty-bob-jones", "Bob Jones", "Robert William Jones", "bob.jones@example.net",
                      "+44-7700900456"),
        household=Household(
            partner=Person("pty-hannah-jones", "Hannah Jones", "Hannah Louise Jones", "hannah.jones@example.net",
                           "+44-7700900562"),
            building="27", street="Cardigan Road", town="Leeds", county="West Yorkshire", post_code="LS6 1DJ",
            phone="+44-1134960321", contribution=25000,
        ),
        employer="Brightwater Civil Engineering Ltd",
        salary=241876,
        payday=28,
        landlord="Kirkgate Property Management",
        rent=87500,
        bills=(
            ("Leeds City Council", "COUNCIL TAX", 14200, 14200, 2),
            ("British Gas", "ENERGY", 6500, 9500, 15),
            ("EE Ltd", "MOBILE", 2200, 2200, 20),
            ("Virgin Media", "BROADBAND", 4500, 4500, 24),
        ),
        opening={"current": (90000, 140000), "savings": (250000, 400000)},
        overdraft=25000,
        card_limit=0,
        savings_rate_bp=375,
        sweep=25000,
        friends=("Sam Okafor", "Dan Murphy"),
        nicknames={"current": "Main account", "savings": "House fund"},
        scheduled=(("Sam Okafor", "FESTIVAL TICKETS", 14500, 12),),
        offers=(
            Offer("current", "LimitIncrease", "Raise your arranged overdraft to 750 GBP", 75000, 0, "39.9",
                  "Arranged overdraft at 39.9% EAR variable, reviewed yearly", (-3, 27), "overdraft"),
        ),
        chips_in=("alice", 3000, 8, "ALLOTMENT SHARE"),  # a payment between two customers of this bank
    ),
)
