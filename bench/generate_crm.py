"""Generate CRM exports: ``python -m bench.generate_crm N [PATH] [--clean] [--layout=generic|shopify|hubspot]``.

The rows look like a real Canadian/US customer base written by many hands:
countries as ``CA``/``Canada``/``CAN``, provinces as codes or names, postal
codes with and without the space, phones in six formats, e-mail domains in
mixed case, some multi-line streets, businesses without a contact, customers
without a shipping address, a few international phones. About 2 % of the rows
carry one defect that validation must reject (bad phone, bad e-mail, missing
name, bad postal code, unknown province, bad crm_id, duplicate crm_id,
missing street).

Everything is built column-wise with numpy and Arrow compute, so a million
rows take a few seconds. Output goes under ``bench/data/`` (git-ignored).
``--clean`` leaves the defects out: ``sample_data/crm_customers.csv`` is
``python -m bench.generate_crm 200 sample_data/crm_customers.csv --clean``.
``--layout=shopify`` or ``--layout=hubspot`` writes the same customers as that
system exports them (Shopify: ``'``-prefixed ids and phones, and addresses as
incomplete as a real store's — see :func:`_shopify`; HubSpot: multi-line streets
in one column).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from crmsync.schemas.address import ADDRESS_FIELDS
from crmsync.schemas.crm import CRM_COLUMNS

DATA = Path(__file__).parent / "data"
INVALID_SHARE = 0.02

# city, province code, province name, country, postal prefixes (CA: FSAs; US: zip5 bases), area code
CITIES = [
    ("Calgary", "AB", "Alberta", "CAN", "T2P T2R T3A T2E", "403"),
    ("Edmonton", "AB", "Alberta", "CAN", "T5J T5K T6E", "780"),
    ("Vancouver", "BC", "British Columbia", "CAN", "V6B V6C V5K", "604"),
    ("Victoria", "BC", "British Columbia", "CAN", "V8W V8V", "250"),
    ("Toronto", "ON", "Ontario", "CAN", "M5V M5H M4W M6G", "416"),
    ("Ottawa", "ON", "Ontario", "CAN", "K1P K1R K2P", "613"),
    ("Montréal", "QC", "Québec", "CAN", "H3B H2X H3A", "514"),
    ("Québec", "QC", "Quebec", "CAN", "G1R G1K", "418"),
    ("Winnipeg", "MB", "Manitoba", "CAN", "R3C R3B", "204"),
    ("Regina", "SK", "Saskatchewan", "CAN", "S4P S4R", "306"),
    ("Halifax", "NS", "Nova Scotia", "CAN", "B3J B3H", "902"),
    ("St. John's", "NL", "Newfoundland and Labrador", "CAN", "A1C A1B", "709"),
    ("Seattle", "WA", "Washington", "USA", "98101 98104 98109", "206"),
    ("Portland", "OR", "Oregon", "USA", "97204 97205", "503"),
    ("San Francisco", "CA", "California", "USA", "94105 94103", "415"),
    ("Denver", "CO", "Colorado", "USA", "80202 80203", "303"),
    ("Chicago", "IL", "Illinois", "USA", "60601 60602 60611", "312"),
    ("Boston", "MA", "Massachusetts", "USA", "02108 02110", "617"),
    ("New York", "NY", "New York", "USA", "10001 10013", "212"),
    ("Austin", "TX", "Texas", "USA", "78701 78702", "512"),
    ("Washington", "DC", "District of Columbia", "USA", "20001 20005", "202"),
]
FIRST = (
    "Olivia Liam Emma Noah Amelia William Sophia James Chloé Benjamin Zoé Lucas Mia Mateo Aanya Wei Fatima Omar"
    " Hiroshi Priya"
).split()
LAST = (
    "Tremblay Smith Nguyen Roy Gagnon Lee Wilson Martin Côté Brown Singh Chen Patel Garcia Johnson Bouchard Kim"
    " Ahmed Müller O'Brien"
).split()
COMPANY = (
    "Northwind Maple Prairie Harbour Summit Lakeside Granite Cedar Aurora Pacific Atlantic Boreal".split()
)
KIND = "Traders Supply Consulting Bakery Outfitters Dental Logistics Studio Hardware Foods".split()
STREET = "Main St|2 Ave SW|Rue Sainte-Catherine|Oak Ave|Elm St|King St W|Granville St|Jasper Ave|Market St|Pine St".split(
    "|"
)
DOMAIN = "example.com|Example.com|mail.example.org|EXAMPLE.NET|northwind.example.ca|shop.example.us".split(
    "|"
)
UNIT_LETTERS = np.array(list("ABCEGHJKLMNPRSTVWXYZ"))


def _pick(rng: np.random.Generator, values: list[str], n: int) -> Any:
    return pc.take(pa.array(values, pa.large_string()), pa.array(rng.integers(0, len(values), n)))


def _join(*parts: Any, sep: str = "") -> Any:
    typed = [
        pa.scalar(p, pa.large_string()) if isinstance(p, str) else pc.cast(p, pa.large_string())
        for p in parts
    ]
    return pc.binary_join_element_wise(*typed, pa.scalar(sep, pa.large_string()))


def _text(values: Any) -> Any:
    return pc.cast(pa.array(values), pa.large_string())


def _choose(rng: np.random.Generator, variants: list[Any], weights: list[float], n: int) -> Any:
    index = rng.choice(len(variants), size=n, p=np.asarray(weights) / sum(weights))
    return pc.choose(pa.array(index.astype(np.int8)), *[pc.cast(v, pa.large_string()) for v in variants])


def _digits(rng: np.random.Generator, n: int, width: int, low: int = 0) -> Any:
    return pc.utf8_lpad(_text(rng.integers(low, 10**width, n)), width, "0")


def _address(rng: np.random.Generator, n: int, city_index: Any) -> dict[str, Any]:
    cities = list(zip(*CITIES, strict=True))
    take = pa.array(city_index)
    city = pc.take(pa.array(cities[0], pa.large_string()), take)
    code = pc.take(pa.array(cities[1], pa.large_string()), take)
    name = pc.take(pa.array(cities[2], pa.large_string()), take)
    country_code = pc.take(pa.array(cities[3], pa.large_string()), take)
    area = pc.take(pa.array(cities[5], pa.large_string()), take)
    canadian = pc.equal(country_code, "CAN")
    # one of the city's postal prefixes
    prefixes = [p.split() for p in cities[4]]
    choice = rng.integers(0, 1 << 30, n) % np.array([len(prefixes[i]) for i in city_index])
    flat = [p for group in prefixes for p in group]
    offsets = np.cumsum([0] + [len(g) for g in prefixes[:-1]])
    prefix = pc.take(pa.array(flat, pa.large_string()), pa.array(offsets[city_index] + choice))
    ldu = _join(
        _text(rng.integers(0, 10, n)),
        pa.array(UNIT_LETTERS[rng.integers(0, len(UNIT_LETTERS), n)]),
        _text(rng.integers(0, 10, n)),
    )
    ca_postal = _choose(
        rng,
        [_join(prefix, ldu, sep=" "), pc.utf8_lower(_join(prefix, ldu)), _join(prefix, ldu)],
        [0.7, 0.15, 0.15],
        n,
    )
    us_postal = _choose(rng, [prefix, _join(prefix, _digits(rng, n, 4), sep="-")], [0.8, 0.2], n)
    country = pc.if_else(
        canadian,
        _choose(
            rng, [pa.array(["CA"] * n), pa.array(["CAN"] * n), pa.array(["Canada"] * n)], [0.4, 0.3, 0.3], n
        ),
        _choose(
            rng,
            [pa.array(["US"] * n), pa.array(["USA"] * n), pa.array(["United States"] * n)],
            [0.4, 0.3, 0.3],
            n,
        ),
    )
    province = _choose(rng, [code, name, pc.utf8_lower(code)], [0.7, 0.2, 0.1], n)
    exchange = _text(rng.integers(200, 1000, n))
    line = _digits(rng, n, 4)
    phone = _choose(
        rng,
        [
            _join("(", area, ") ", exchange, "-", line),
            _join(area, exchange, line, sep="-"),
            _join("+1 ", area, " ", exchange, " ", line),
            _join(area, exchange, line),
            _join(area, exchange, line, sep="."),
            _join("1-", area, "-", exchange, "-", line),
        ],
        [0.3, 0.3, 0.1, 0.1, 0.1, 0.1],
        n,
    )
    number = _text(rng.integers(1, 9999, n))
    street = _join(number, _pick(rng, STREET, n), sep=" ")
    return {
        "street1": street,
        "city": city,
        "province": province,
        "country": pc.cast(country, pa.large_string()),
        "postal_code": pc.if_else(canadian, ca_postal, us_postal),
        "phone": phone,
    }


def generate_frame(n: int, seed: int = 7, *, invalid_share: float = INVALID_SHARE) -> pa.Table:
    """An Arrow table of ``n`` generic CRM rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    empty = pc.cast(pa.array([""] * n), pa.large_string())
    first, last = _pick(rng, FIRST, n), _pick(rng, LAST, n)
    person = _join(first, last, sep=" ")
    business = _join(_pick(rng, COMPANY, n), _pick(rng, KIND, n), sep=" ")
    kind = rng.random(n)  # < 0.6 person, < 0.85 person at a business, else business only
    contact = pc.if_else(pa.array(kind < 0.85), person, empty)
    company = pc.if_else(pa.array(kind >= 0.6), business, empty)
    columns: dict[str, Any] = {
        "crm_id": _join("CRM-", _text(np.arange(100_000, 100_000 + n))),
        "contact_name": contact,
        "business_name": company,
    }
    billing = _address(rng, n, rng.integers(0, len(CITIES), n))
    multi_line = pa.array(rng.random(n) < 0.01)
    billing["street1"] = pc.if_else(
        multi_line, _join(billing["street1"], "Suite 400", sep="\n"), billing["street1"]
    )
    local = pc.utf8_lower(pc.replace_substring_regex(_join(first, last, sep="."), r"[^A-Za-z.]", ""))
    email = _join(local, _text(rng.integers(1, 999, n)), "@", _pick(rng, DOMAIN, n))
    name = pc.if_else(pc.equal(contact, ""), company, contact)
    columns["cell_phone"] = pc.if_else(pa.array(rng.random(n) < 0.5), billing["phone"], empty)
    for field in ADDRESS_FIELDS:
        columns[f"billing_{field}"] = {"name": name, "email": email, "street2": empty}.get(
            field, billing.get(field)
        )
    has_shipping = pa.array(rng.random(n) < 0.4)
    shipping = _address(rng, n, rng.integers(0, len(CITIES), n))
    for field in ADDRESS_FIELDS:
        value = {"name": name, "email": empty, "street2": empty}.get(field, shipping.get(field))
        columns[f"shipping_{field}"] = pc.if_else(has_shipping, value, empty)
    # a few international phones (slow path of normalisation, still valid)
    international = pa.array(rng.random(n) < 0.003)
    columns["billing_phone"] = pc.if_else(
        international, _join("+44 20 7946 ", _digits(rng, n, 4)), columns["billing_phone"]
    )
    _inject_defects(rng, columns, n, invalid_share)
    return pa.table({name: columns[name] for name in CRM_COLUMNS})


def _inject_defects(rng: np.random.Generator, columns: dict[str, Any], n: int, share: float) -> None:
    """Give ``share`` of the rows one defect each, spread over the kinds validation knows."""
    rows = np.flatnonzero(rng.random(n) < share)
    kinds = rng.integers(0, 8, len(rows))
    defects: list[tuple[str, str | None]] = [
        ("cell_phone", "555-12"),
        ("billing_email", "someone@@example"),
        ("contact_name", ""),  # and business_name below
        ("billing_postal_code", "ZZZ 999"),
        ("billing_province", "Atlantis"),
        ("crm_id", None),  # a space in the id
        ("crm_id", "dup"),  # a copy of the previous row's id
        ("billing_street1", ""),
    ]
    for kind, (column, value) in enumerate(defects):
        target = rows[kinds == kind]
        if not len(target):
            continue
        current = columns[column].to_numpy(zero_copy_only=False).astype(object)
        if value is None:
            current[target] = [f"CRM {i}" for i in target]
        elif value == "dup":
            target = target[target > 0]
            current[target] = current[target - 1]
        else:
            current[target] = value
        columns[column] = pa.array(current, pa.large_string())
        if column == "contact_name":
            business = columns["business_name"].to_numpy(zero_copy_only=False).astype(object)
            business[target] = ""
            columns["business_name"] = pa.array(business, pa.large_string())


# -- the same customers in a system's own layout ---------------------------------------

LAYOUTS = ("generic", "shopify", "hubspot")
_ALPHA2 = {
    "CAN": "CA",
    "USA": "US",
    "Canada": "CA",
    "United States": "US",
    "U.S.A.": "US",
    "CA": "CA",
    "US": "US",
}


def _split_name(name: Any) -> tuple[Any, Any]:
    parts = pc.split_pattern(name, " ", max_splits=1)
    padded = pc.list_value_length(parts)
    first = pc.list_element(parts, 0)
    last = pc.if_else(
        pc.greater(padded, 1),
        pc.list_element(pc.if_else(pc.greater(padded, 1), parts, pa.scalar(["", ""], parts.type)), 1),
        "",
    )
    return first, last


def _alpha2(country: Any) -> Any:
    codes = pc.dictionary_encode(country)
    mapped = pa.array([_ALPHA2.get(v, v) for v in codes.dictionary.to_pylist()], pa.large_string())
    return pc.take(mapped, codes.indices)


#: Shopify's addresses, as the real store export in ../shared/real-exports has them (1,427 customers):
#: 10 % have no street at all (an e-mail, now and then a country), 61 % a street but no ZIP (a store in a
#: country where few customers give one), 29 % a whole address. Modelled as 10 % / 65 % / 25 %: three
#: customers in four have an address Helcim cannot hold, which crmsync omits with warnings.
SHOPIFY_NO_STREET = 0.10
SHOPIFY_NO_ZIP = 0.65


def _shopify(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Shopify's current customers export: ``'``-prefixed ids and phones, three addresses in four incomplete."""
    n = table.num_rows
    first, last = _split_name(table["contact_name"].combine_chunks())
    draw = rng.random(n)
    no_street = draw < SHOPIFY_NO_STREET
    no_address = pa.array(no_street)
    no_zip = pa.array(draw < SHOPIFY_NO_STREET + SHOPIFY_NO_ZIP)
    keeps_country = pa.array(~no_street | (rng.random(n) < 0.43))
    empty = pc.cast(pa.array([""] * n), pa.large_string())

    def address(column: str, missing: Any = no_address) -> Any:
        return pc.if_else(missing, empty, table[column].combine_chunks())

    phone = table["billing_phone"].combine_chunks()
    columns = {
        "Customer ID": _join("'", _text(np.arange(5_897_398_649_016, 5_897_398_649_016 + n))),
        "First Name": first,
        "Last Name": last,
        "Email": table["billing_email"].combine_chunks(),
        "Accepts Email Marketing": _pick(rng, ["yes", "no"], n),
        "Default Address Company": table["business_name"].combine_chunks(),
        "Default Address Address1": address("billing_street1"),
        "Default Address Address2": address("billing_street2"),
        "Default Address City": address("billing_city"),
        "Default Address Province Code": address("billing_province"),
        "Default Address Country Code": pc.if_else(
            keeps_country, _alpha2(table["billing_country"].combine_chunks()), empty
        ),
        "Default Address Zip": address("billing_postal_code", no_zip),
        "Default Address Phone": pc.if_else(
            pc.or_(no_address, pc.equal(phone, "")), empty, _join("'", phone)
        ),
        "Phone": pc.if_else(
            pc.equal(table["cell_phone"].combine_chunks(), ""),
            empty,
            _join("'", table["cell_phone"].combine_chunks()),
        ),
        "Accepts SMS Marketing": _pick(rng, ["yes", "no"], n),
        "Total Spent": _join(_text(rng.integers(0, 5000, n)), ".00"),
        "Total Orders": _text(rng.integers(0, 40, n)),
        "Note": empty,
        "Tax Exempt": _pick(rng, ["no"], n),
        "Tags": _pick(rng, ["", "newsletter", "vip"], n),
    }
    return pa.table(columns)


def _hubspot(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """HubSpot's contact export, multi-line streets joined back into Street Address."""
    n = table.num_rows
    first, last = _split_name(table["contact_name"].combine_chunks())
    street2 = table["billing_street2"].combine_chunks()
    street = pc.if_else(
        pc.equal(street2, ""),
        table["billing_street1"].combine_chunks(),
        _join(table["billing_street1"].combine_chunks(), street2, sep="\n"),
    )
    columns = {
        "Record ID": _text(np.arange(51_234_000, 51_234_000 + n)),
        "First Name": first,
        "Last Name": last,
        "Email": table["billing_email"].combine_chunks(),
        "Phone Number": table["billing_phone"].combine_chunks(),
        "Mobile Phone Number": table["cell_phone"].combine_chunks(),
        "Company Name": table["business_name"].combine_chunks(),
        "Street Address": street,
        "City": table["billing_city"].combine_chunks(),
        "State/Region": table["billing_province"].combine_chunks(),
        "Postal Code": table["billing_postal_code"].combine_chunks(),
        "Country/Region": table["billing_country"].combine_chunks(),
        "Contact owner": _pick(rng, ["Devon Blake", "Sam Okafor", ""], n),
        "Lifecycle Stage": _pick(rng, ["lead", "customer", "subscriber"], n),
        "Create Date": _pick(rng, ["2/5/24 1:51", "6/20/24 15:00", "9/11/24 10:32"], n),
    }
    return pa.table(columns)


def generate(
    n: int,
    path: Path | None = None,
    seed: int = 7,
    *,
    invalid_share: float = INVALID_SHARE,
    layout: str = "generic",
) -> Path:
    """Write an ``n``-row export (default ``bench/data/crm_N.csv``, ``crm_LAYOUT_N.csv``) and return its path.

    ``layout``: generic (crmsync's own columns), shopify (Shopify's current customers export) or
    hubspot (HubSpot's contact export): the same customers, as that system writes them.
    """
    path = path or DATA / (f"crm_{n}.csv" if layout == "generic" else f"crm_{layout}_{n}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = generate_frame(n, seed, invalid_share=invalid_share)
    if layout != "generic":
        table = {"shopify": _shopify, "hubspot": _hubspot}[layout](table, np.random.default_rng(seed + 1))
    pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(quoting_style="needed"))
    return path


def main(argv: list[str]) -> int:
    clean = "--clean" in argv
    layout = next((a.split("=", 1)[1] for a in argv if a.startswith("--layout=")), "generic")
    argv = [a for a in argv if a != "--clean" and not a.startswith("--layout=")]
    if not argv or not argv[0].replace("_", "").isdigit() or layout not in LAYOUTS:
        print(
            f"usage: python -m bench.generate_crm N [PATH] [--clean] [--layout={'|'.join(LAYOUTS)}]",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    path = generate(
        int(argv[0]),
        Path(argv[1]) if len(argv) > 1 else None,
        invalid_share=0.0 if clean else INVALID_SHARE,
        layout=layout,
    )
    print(
        f"wrote {int(argv[0]):,} rows to {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
