"""Realistic, deterministic sandbox data: customers, cards, bank accounts, PADs.

``seed_store(store, SeedOptions(customers=N, seed=S, today=D))`` adds N
customers as if they had been created in Helcim (auto ``CST…`` codes):
Canadian and US people and businesses with plausible names, addresses, postal
codes, area codes and e-mails, and a mix of payment methods chosen so that a
reconciliation finds every kind of problem:

* cards: none (~15 %), one, two or three; Visa, Mastercard, Amex, Discover;
  some expired, some expiring within 30 days of ``today``; usually one default,
  a few customers with no default and a few with two; a few cards that appear
  on two customers (same first-6/last-4, expiry and holder);
* bank accounts (~20 % of customers): CA (institution + transit) or US (ABA
  routing number with a valid checksum), verified or not;
* PADs per bank account: accepted, pending (some for weeks), revoked, or none.

The same seed, N and ``today`` always give the same data. Rows are built in
plain Python and written with ``executemany`` in one transaction, so 100,000
customers take seconds.
"""

from __future__ import annotations

import json
import random
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from helcim_sandbox.store import ZERO_DATE, Store, search_text

FIRST_NAMES = (
    "Olivia Liam Emma Noah Charlotte Oliver Amelia William Ava Benjamin Sophia Lucas Isabella Henry Mia "
    "Theodore Evelyn Jack Harper Levi Luna Alexander Camila Jackson Gianna Mateo Elizabeth Daniel Eleanor "
    "Michael Ella Mason Abigail Sebastian Sofia Ethan Avery Logan Scarlett Owen Emily Samuel Aria Jacob "
    "Penelope Asher Chloe Aiden Layla John Mila Joseph Nora Wyatt Hazel David Madison Leo Ellie Luke Lily "
    "Julian Nova Hudson Isla Grayson Grace Matthew Violet Ezra Aurora Gabriel Riley Carter Zoey Isaac "
    "Willow Jayden Emilia Luca Stella Anthony Zoe Dylan Victoria Lincoln Hannah Thomas Addison Maverick "
    "Leah Elias Lucy Josiah Eliana Charles Ivy Caleb Everly Christopher Lillian Ezekiel Paisley Miles "
    "Elena Jaxon Naomi Isaiah Maya Andrew Natalie Joshua Kinsley Nathan Delilah Nolan Claire Adrian Audrey "
    "Cameron Aaliyah Santiago Ruby Eli Brooklyn Aaron Alice Ryan Aubrey Angel Autumn Cooper Leilani Waylon "
    "Savannah Easton Valentina Kai Kennedy Christian Madelyn Landon Josephine Colton Bella Roman Skylar "
    "Axel Genesis Brooks Sadie Jonathan Quinn Robert Emery Jameson Piper Ian Lydia Everett Serenity "
    "Jean-François Marie-Ève Étienne Geneviève Mathieu Chloé Benoît Amélie Priya Arjun Wei Mei Hiroshi "
    "Yuki Ahmed Fatima Mohammed Aisha Siobhan Declan Ngozi Chinedu Tomás Lucía Raj Ananya Dmitri Anastasia"
).split()

LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Tremblay Gagnon Roy Côté Bouchard Gauthier "
    "Morin Lavoie Fortin Gagné Ouellet Pelletier Bélanger Lévesque Bergeron Leblanc Paquette Girard Simard "
    "Boucher Caron Beaulieu Cloutier Dubé Poirier Fournier Lapointe Leclerc Lefebvre Poulin Thibault "
    "Patel Singh Kumar Sharma Chen Wang Li Zhang Liu Kim Park Choi Tanaka Sato Suzuki MacDonald Campbell "
    "Stewart Murray Fraser Reid Ross Graham Morrison O'Brien O'Connor Murphy Kelly Sullivan McCarthy "
    "Walsh Byrne Ryan Doyle Schmidt Mueller Schneider Fischer Weber Novak Kowalski Nowak Ivanov Petrov "
    "Rossi Russo Ferrari Esposito Bianchi Romano Silva Santos Oliveira Costa Pereira Almeida Okafor Mensah"
).split()

BUSINESS_WORDS = (
    "Prairie Northern Maple Summit Harbour Coastal Granite Cedar Aurora Pioneer Riverbend Lakeside "
    "Frontier Keystone Golden Evergreen Bluewater Redwood Silverline Timberline Westside Eastgate Polar "
    "Canyon Copper Ironwood Highland Midtown Bayview Sunrise Chinook Rocky Atlantic Pacific Lighthouse"
).split()
BUSINESS_TRADES = (
    "Coffee Co.|Plumbing Ltd.|Dental Clinic|Auto Repair|Bakery|Landscaping Inc.|Fitness Studio|Legal LLP|"
    "Consulting Group|Veterinary Hospital|Hardware|Electric Ltd.|Florist|Bookkeeping|Yoga Collective|"
    "Brewing Company|Pet Supply|Cleaning Services|Photography|Roofing Inc.|Physiotherapy|Print Shop|"
    "Catering|Music School|Outfitters|Design Studio|Pharmacy|Daycare|Salon & Spa|Logistics Inc."
).split("|")

STREET_NAMES = (
    "Main|King|Queen|Elm|Oak|Maple|Cedar|Pine|Park|Lake|Hill|Church|Victoria|Wellington|Jasper|Portage|"
    "Robson|Granville|Yonge|Bloor|Sherbrooke|Spring Garden|Broadway|Washington|Lincoln|Jefferson|Madison|"
    "Sunset|Riverside|Highland|College|Mill|Bay|Front|Water|Centre|Railway|Prospect|Forest|Meadow"
).split("|")
STREET_TYPES_CA = ("St", "Ave", "Rd", "Blvd", "Dr", "Cres", "Way", "St NW", "Ave SW", "Trail")
STREET_TYPES_US = ("St", "Ave", "Rd", "Blvd", "Dr", "Ln", "Ct", "Pkwy", "Way", "Pl")

# city, province/state, postal prefixes (FSA for Canada, 3-digit ZIP prefix for the US), area codes
CITIES_CA: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Calgary", "AB", ("T2P", "T2R", "T3A", "T2E", "T3H"), ("403", "587", "825")),
    ("Edmonton", "AB", ("T5J", "T6E", "T5K", "T6H"), ("780", "587")),
    ("Red Deer", "AB", ("T4N", "T4P"), ("403",)),
    ("Vancouver", "BC", ("V6B", "V5K", "V6K", "V5N"), ("604", "778", "236")),
    ("Victoria", "BC", ("V8W", "V8V", "V9A"), ("250", "778")),
    ("Kelowna", "BC", ("V1Y", "V1W"), ("250", "236")),
    ("Saskatoon", "SK", ("S7K", "S7N"), ("306", "639")),
    ("Regina", "SK", ("S4P", "S4S"), ("306",)),
    ("Winnipeg", "MB", ("R3C", "R3M", "R2W"), ("204", "431")),
    ("Toronto", "ON", ("M5V", "M4W", "M6G", "M5A", "M4E"), ("416", "647", "437")),
    ("Ottawa", "ON", ("K1P", "K2P", "K1S"), ("613", "343")),
    ("Hamilton", "ON", ("L8P", "L8R"), ("905", "289")),
    ("London", "ON", ("N6A", "N6B"), ("519", "226")),
    ("Montréal", "QC", ("H2X", "H3B", "H2T", "H4A"), ("514", "438")),
    ("Québec", "QC", ("G1R", "G1K"), ("418", "581")),
    ("Halifax", "NS", ("B3H", "B3J", "B3K"), ("902", "782")),
    ("Moncton", "NB", ("E1C", "E1A"), ("506",)),
    ("St. John's", "NL", ("A1C", "A1B"), ("709",)),
    ("Charlottetown", "PE", ("C1A",), ("902",)),
    ("Whitehorse", "YT", ("Y1A",), ("867",)),
)
CITIES_US: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Seattle", "WA", ("981",), ("206",)),
    ("Spokane", "WA", ("992",), ("509",)),
    ("Portland", "OR", ("972",), ("503", "971")),
    ("San Francisco", "CA", ("941",), ("415", "628")),
    ("Los Angeles", "CA", ("900",), ("213", "323")),
    ("San Diego", "CA", ("921",), ("619", "858")),
    ("Denver", "CO", ("802",), ("303", "720")),
    ("Phoenix", "AZ", ("850",), ("602", "480")),
    ("Austin", "TX", ("787",), ("512", "737")),
    ("Dallas", "TX", ("752",), ("214", "469")),
    ("Chicago", "IL", ("606",), ("312", "773")),
    ("Minneapolis", "MN", ("554",), ("612",)),
    ("Detroit", "MI", ("482",), ("313",)),
    ("Boston", "MA", ("021",), ("617", "857")),
    ("New York", "NY", ("100", "101"), ("212", "646", "917")),
    ("Buffalo", "NY", ("142",), ("716",)),
    ("Philadelphia", "PA", ("191",), ("215", "267")),
    ("Atlanta", "GA", ("303",), ("404", "470")),
    ("Miami", "FL", ("331",), ("305", "786")),
    ("Nashville", "TN", ("372",), ("615", "629")),
    ("Washington", "DC", ("200",), ("202",)),
    ("Burlington", "VT", ("054",), ("802",)),
    ("Anchorage", "AK", ("995",), ("907",)),
    ("Honolulu", "HI", ("968",), ("808",)),
)
EMAIL_DOMAINS = (
    "gmail.com",
    "outlook.com",
    "yahoo.ca",
    "yahoo.com",
    "hotmail.com",
    "icloud.com",
    "shaw.ca",
    "telus.net",
    "rogers.com",
    "sympatico.ca",
    "proton.me",
    "comcast.net",
    "videotron.ca",
)
CARD_BINS = (
    ("visa", ("454545", "411111", "450060", "451014", "492980"), 50),
    ("mastercard", ("545454", "510510", "555555", "222300", "520082"), 30),
    ("amex", ("371449", "378282", "341111"), 12),
    ("discover", ("601111", "601100", "644564"), 8),
)
CA_INSTITUTIONS = ("001", "002", "003", "004", "006", "010", "016", "815", "828")
US_ROUTING_PREFIXES = ("0210", "0260", "0110", "0710", "1210", "0610", "1220", "0420")
LETTERS = "ABCEGHJKLMNPRSTVWXYZ"


@dataclass(frozen=True)
class SeedOptions:
    customers: int = 200
    seed: int = 0
    today: date | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> SeedOptions:
        customers = int(raw.get("customers", 200))
        if customers < 0:
            raise ValueError("customers must be zero or more")
        today = raw.get("today")
        return cls(customers, int(raw.get("seed", 0)), date.fromisoformat(today) if today else None)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _aba_check_digit(first8: str) -> str:
    weights = (3, 7, 1, 3, 7, 1, 3, 7)
    total = sum(int(d) * w for d, w in zip(first8, weights, strict=True))
    return str((10 - total % 10) % 10)


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class _Generator:
    def __init__(self, rng: random.Random, today: date) -> None:
        self.rng = rng
        self.today = today
        self.now = datetime.combine(today, datetime.min.time()).replace(hour=9)

    def token(self) -> str:
        return f"{self.rng.getrandbits(88):022x}"

    def moment_between(self, start: datetime, end: datetime) -> datetime:
        span = max(1, int((end - start).total_seconds()))
        return start + timedelta(seconds=self.rng.randrange(span))

    def phone(self, area: str, style: int) -> str:
        exchange = f"{self.rng.randrange(200, 1000)}"
        line = f"{self.rng.randrange(0, 10000):04d}"
        return (
            f"{area}{exchange}{line}",
            f"{area}-{exchange}-{line}",
            f"({area}) {exchange}-{line}",
            f"+1 {area} {exchange} {line}",
            f"{area}.{exchange}.{line}",
        )[style]

    def postal(self, country: str, prefix: str) -> str:
        rng = self.rng
        if country == "CAN":
            return f"{prefix} {rng.randrange(10)}{rng.choice(LETTERS)}{rng.randrange(10)}"
        zip5 = f"{prefix}{rng.randrange(100):02d}"
        return f"{zip5}-{rng.randrange(10000):04d}" if rng.random() < 0.15 else zip5

    def address(self, name: str, country: str, email: str) -> dict[str, str]:
        rng = self.rng
        city, province, prefixes, areas = rng.choice(CITIES_CA if country == "CAN" else CITIES_US)
        street_type = rng.choice(STREET_TYPES_CA if country == "CAN" else STREET_TYPES_US)
        street2 = ""
        roll = rng.random()
        if roll < 0.18:
            street2 = f"Suite {rng.randrange(100, 1900)}"
        elif roll < 0.30:
            street2 = f"Unit {rng.randrange(1, 40)}"
        return {
            "name": name,
            "street1": f"{rng.randrange(1, 9999)} {rng.choice(STREET_NAMES)} {street_type}",
            "street2": street2,
            "city": city,
            "province": province,
            "country": country,
            "postalCode": self.postal(country, rng.choice(prefixes)),
            "phone": self.phone(rng.choice(areas), rng.randrange(3)) if rng.random() < 0.7 else "",
            "email": email,
        }

    def email(self, first: str, last: str, business: str) -> str:
        rng = self.rng

        def ascii_slug(text: str) -> str:
            plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
            return "".join(ch for ch in plain.lower() if ch.isalnum() or ch in ".-_")

        if business and rng.random() < 0.6:
            domain = ascii_slug(business.split()[0]) + rng.choice((".ca", ".com", ".net"))
            return f"{rng.choice(('info', 'billing', 'accounts', ascii_slug(first)))}@{domain}"
        local = rng.choice(
            (
                f"{first}.{last}",
                f"{first[0]}{last}",
                f"{first}{last}{rng.randrange(1, 99)}",
                f"{first}_{last}",
            )
        )
        return f"{ascii_slug(local)}@{rng.choice(EMAIL_DOMAINS)}"

    def card_number_f6l4(self) -> str:
        rng = self.rng
        roll = rng.randrange(100)
        for _, bins, weight in CARD_BINS:
            if roll < weight:
                return rng.choice(bins) + _digits(rng, 4)
            roll -= weight
        raise AssertionError("card weights must add up to 100")

    def expiry(self) -> tuple[str, str]:
        """(MMYY, kind) with kind expired, expiring or valid."""
        rng = self.rng
        roll = rng.random()
        month_index = self.today.year * 12 + self.today.month - 1
        if roll < 0.10:
            offset, kind = -rng.randrange(1, 25), "expired"
        elif roll < 0.17:
            offset, kind = 0, "expiring"  # valid through the end of this month
        elif roll < 0.21:
            offset, kind = 1, "expiring_next_month"
        else:
            offset, kind = rng.randrange(2, 60), "valid"
        year, month = divmod(month_index + offset, 12)
        return f"{month + 1:02d}{year % 100:02d}", kind


def seed_store(store: Store, options: SeedOptions) -> dict[str, Any]:
    """Add ``options.customers`` customers with payment methods; return what was made."""
    rng = random.Random(options.seed)
    gen = _Generator(rng, options.today or datetime.now(store.tz).date())
    stats: Counter[str] = Counter()
    customers: list[tuple[Any, ...]] = []
    cards: list[tuple[Any, ...]] = []
    banks: list[tuple[Any, ...]] = []
    pads: list[tuple[Any, ...]] = []
    customer_id = store.next_id("customers")
    card_id = store.next_id("cards")
    bank_id = store.next_id("bank_accounts")
    pad_id = store.next_id("pads")
    cst = int(store._meta("next_cst") or 1000)
    taken = {
        row[0]
        for row in store.db.execute("SELECT customer_code FROM customers WHERE customer_code LIKE 'CST%'")
    }
    recent_cards: list[tuple[str, str, str]] = []
    three_years_ago = gen.now - timedelta(days=3 * 365)

    for _ in range(options.customers):
        while f"CST{cst}" in taken:
            cst += 1
        code = f"CST{cst}"
        cst += 1
        country = "CAN" if rng.random() < 0.55 else "USA"
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        contact = f"{first} {last}"
        business = ""
        kind = rng.random()
        if kind < 0.25:
            business = f"{rng.choice(BUSINESS_WORDS)} {rng.choice(BUSINESS_TRADES)}"
            if rng.random() < 0.15:
                contact = ""  # business-only customer
        elif kind < 0.32:
            business = f"{last} {rng.choice(BUSINESS_TRADES)}"
        email = gen.email(first, last, business)
        billing = gen.address(business or contact, country, email) if rng.random() < 0.9 else None
        shipping: dict[str, str] | None = None
        roll = rng.random()
        if billing and roll < 0.4:
            shipping = dict(billing)
        elif roll < 0.6:
            shipping = gen.address(contact or business, country, "")
        area = (billing or {}).get("phone", "")[:3]
        if not area.isdigit():
            area = rng.choice(rng.choice(CITIES_CA if country == "CAN" else CITIES_US)[3])
        cell = gen.phone(area, rng.randrange(5)) if rng.random() < 0.8 else ""
        created = gen.moment_between(three_years_ago, gen.now - timedelta(days=1))
        updated = gen.moment_between(created, gen.now) if rng.random() < 0.3 else None
        stats["customers"] += 1
        stats[country] += 1

        # cards
        roll = rng.random()
        n_cards = 0 if roll < 0.15 else 1 if roll < 0.75 else 2 if roll < 0.93 else 3
        holder = contact or business
        default_plan = rng.random()
        for index in range(n_cards):
            if recent_cards and rng.random() < 0.01:
                f6l4, expiry, holder_name = rng.choice(recent_cards)  # the same card on two customers
                stats["cards_shared"] += 1
            else:
                f6l4, holder_name = gen.card_number_f6l4(), holder
                expiry, expiry_kind = gen.expiry()
                stats[f"cards_{expiry_kind}"] += 1
                recent_cards.append((f6l4, expiry, holder_name))
                if len(recent_cards) > 500:
                    recent_cards.pop(0)
            if default_plan < 0.05:
                is_default = False  # a customer with cards but no default
            elif default_plan < 0.08 and n_cards > 1:
                is_default = index < 2  # two defaults
            else:
                is_default = index == 0
            card_created = gen.moment_between(created, gen.now)
            cards.append(
                (
                    card_id,
                    customer_id,
                    holder_name,
                    f6l4,
                    gen.token(),
                    expiry,
                    _ts(card_created),
                    _ts(card_created),
                    int(is_default),
                )
            )
            card_id += 1
            stats["cards"] += 1
        if n_cards == 0:
            stats["customers_without_cards"] += 1
        elif default_plan < 0.05:
            stats["customers_without_default_card"] += 1
        elif default_plan < 0.08 and n_cards > 1:
            stats["customers_with_two_default_cards"] += 1

        # bank accounts and PADs
        default_bank = 0
        if rng.random() < 0.2:
            bank_created = gen.moment_between(created, gen.now)
            verified = rng.random() < 0.7
            if country == "CAN":
                institution, transit, routing = rng.choice(CA_INSTITUTIONS), _digits(rng, 5), ""
                account_digits = rng.randrange(7, 13)
            else:
                first8 = rng.choice(US_ROUTING_PREFIXES) + _digits(rng, 4)
                institution, transit, routing = "", "", first8 + _aba_check_digit(first8)
                account_digits = rng.randrange(8, 13)
            account = _digits(rng, account_digits)
            pad_roll = rng.random()
            pad_state = (
                "accepted"
                if pad_roll < 0.6
                else "pending"
                if pad_roll < 0.8
                else "revoked"
                if pad_roll < 0.9
                else "none"
            )
            ready = int(pad_state == "accepted")
            bank_address = billing or gen.address(contact or business, country, email)
            banks.append(
                (
                    bank_id,
                    customer_id,
                    _ts(bank_created),
                    _ts(bank_created),
                    _ts(gen.moment_between(bank_created, gen.now)) if ready else ZERO_DATE,
                    _ts(bank_created + timedelta(days=2)) if verified else ZERO_DATE,
                    gen.token(),
                    rng.choice(("CHECKING", "CHECKING", "SAVINGS")),
                    "CORPORATE" if business and rng.random() < 0.7 else "PERSONAL",
                    int(verified),
                    ready,
                    institution,
                    transit,
                    routing,
                    account[-4:],
                    json.dumps({**bank_address, "street2": "", "phone": "", "email": ""}),
                )
            )
            if pad_state != "none":
                pad_created = _ts(bank_created)
                accepted_at = (
                    _ts(bank_created + timedelta(days=rng.randrange(0, 5)))
                    if pad_state != "pending"
                    else ZERO_DATE
                )
                revoked_at = (
                    _ts(gen.moment_between(bank_created + timedelta(days=5), gen.now))
                    if pad_state == "revoked"
                    else ZERO_DATE
                )
                pads.append(
                    (
                        pad_id,
                        customer_id,
                        bank_id,
                        int(pad_state != "pending"),
                        f"{rng.randrange(24, 200)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                        2 if business else 1,
                        2 if pad_state == "revoked" else 1,
                        pad_created,
                        revoked_at
                        if pad_state == "revoked"
                        else accepted_at
                        if pad_state == "accepted"
                        else pad_created,
                        accepted_at,
                        accepted_at,
                        revoked_at,
                    )
                )
                pad_id += 1
            stats["bank_accounts"] += 1
            stats[f"bank_accounts_{'verified' if verified else 'unverified'}"] += 1
            stats[f"pads_{pad_state}"] += 1
            if rng.random() < 0.8:
                default_bank = bank_id
            bank_id += 1

        customers.append(
            (
                customer_id,
                code,
                contact,
                business,
                cell,
                json.dumps(billing) if billing else None,
                json.dumps(shipping) if shipping else None,
                search_text(code, contact, business, cell, billing, shipping),
                _ts(created),
                _ts(updated) if updated else None,
                default_bank,
            )
        )
        customer_id += 1

    store.bulk_insert(customers, cards, banks, pads, next_cst=cst)
    result: dict[str, Any] = {
        "seed": options.seed,
        "today": gen.today.isoformat(),
        **dict(sorted(stats.items())),
    }
    return result
