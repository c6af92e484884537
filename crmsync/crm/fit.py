"""Which profile fits an export: ``--profile auto``, the hint in a wrong profile's error, and drafts.   [pure]

A profile *fits* an export when every column it requires, and its key (the id
column, or the e-mail for a system without ids), can be filled from the
export's headers, and it reads at least three of them. Among the profiles that fit, the one reading the most of the
export's headers wins (then the one whose own headers the export has the
larger share of, then the name): a Shopify export's ``Default Address City``
is read by the shopify profile only, a HubSpot export's ``State/Region`` by the
hubspot profile only. The fit says how well: ``reads 14 of 20 headers``.

:func:`draft_profile` writes a starting TOML for an export no profile fits,
mapping each header by synonyms, with a comment on each guess.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from crmsync.crm.profiles import Headers, Profile, builtin_profiles, fills, header_key, key_columns
from crmsync.schemas.crm import CRM_COLUMNS

__all__ = ["MIN_HEADERS_READ", "ProfileFit", "draft_profile", "fit_profile", "rank_profiles"]

#: A profile fits only an export it reads at least this many headers of: fewer cannot tell systems apart.
MIN_HEADERS_READ = 3


@dataclass(frozen=True)
class ProfileFit:
    """How one profile fits one export's headers."""

    profile: str
    system: str
    read: int  # the export's headers the profile reads
    headers: int  # the export's non-empty headers
    share: float  # the profile's own headers the export has, as a fraction
    missing: tuple[str, ...] = ()  # what it needs and the export lacks (required columns, the key)
    key: str = "crm_id"  # where the key would come from: "crm_id" (an id column) or "email"
    candidates: tuple[ProfileFit, ...] = field(default=(), compare=False)  # the runners-up, when chosen

    @property
    def fits(self) -> bool:
        """Everything required is there, and enough of the profile's headers to tell the system (3)."""
        return not self.missing and self.read >= MIN_HEADERS_READ

    @property
    def score(self) -> float:
        """The share of the export's headers the profile reads."""
        return round(self.read / self.headers, 3) if self.headers else 0.0

    def describe(self) -> str:
        how = f"reads {self.read} of {self.headers} headers"
        if self.missing:
            return f"{self.profile} ({how}; lacks {', '.join(self.missing)})"
        return f"{self.profile} ({how}, keyed by {'the e-mail' if self.key == 'email' else 'its id column'})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "system": self.system,
            "fits": self.fits,
            "score": self.score,
            "headers_read": self.read,
            "headers": self.headers,
            "key": self.key,
            "missing": list(self.missing),
            "candidates": [
                {"profile": c.profile, "fits": c.fits, "score": c.score, "headers_read": c.read}
                for c in self.candidates
            ],
        }


def fit_profile(profile: Profile, names: list[str]) -> ProfileFit:
    """How well ``profile`` fits an export with these headers."""
    headers = Headers(names, profile.sections)
    known = {header_key(h) for h in profile.known_headers()}
    qualified = [header_key(name) for name in headers.names()]
    read = sum(key in known for key in qualified)
    share = len(known & set(qualified)) / len(known) if known else 0.0
    missing = [column for column in profile.required if not fills(profile, headers, column)]
    key = ""
    for kind, column in zip(profile.key, key_columns(profile), strict=True):
        if fills(profile, headers, column):
            key = kind
            break
    if not key:
        missing.insert(0, "an id column" if profile.key == ("crm_id",) else "an id or e-mail column")
    return ProfileFit(
        profile.name, profile.label, read, len(qualified), round(share, 3), tuple(missing), key or "crm_id"
    )


def rank_profiles(names: list[str], profiles: list[Profile] | None = None) -> list[ProfileFit]:
    """Every profile's fit, best first (fitting ones first, then by headers read and share)."""
    fits = [fit_profile(p, names) for p in (profiles if profiles is not None else builtin_profiles())]
    return sorted(fits, key=lambda f: (not f.fits, -f.read, -f.share, f.profile))


# -- a draft for an unknown export --------------------------------------------------------

#: Words people use for each generic column (compared with header_key; the longest match wins).
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "crm_id": (
        "id",
        "recordid",
        "customerid",
        "contactid",
        "clientid",
        "accountnumber",
        "customernumber",
        "externalid",
        "referenceid",
        "code",
        "kundennr",
        "kundennummer",
        "customerno",
        "clientno",
        "nr",
        "no",
        "numéro",
        "numero",
    ),
    "contact_name": (
        "name",
        "fullname",
        "contactname",
        "contact",
        "customername",
        "clientname",
        "displayname",
        "nom",
        "nomcomplet",
        "nombre",
        "kontakt",
    ),
    "business_name": (
        "company",
        "companyname",
        "business",
        "businessname",
        "organization",
        "organisation",
        "accountname",
        "account",
        "firma",
        "société",
        "societe",
        "entreprise",
        "empresa",
        "unternehmen",
    ),
    "cell_phone": ("mobile", "mobilephone", "cell", "cellphone", "mobilenumber", "cellular"),
    "billing_street1": (
        "street",
        "street1",
        "address",
        "address1",
        "addressline1",
        "streetaddress",
        "billingstreet",
        "billingaddress",
        "billingaddress1",
        "mailingstreet",
        "line1",
        "strasse",
        "straße",
        "rue",
        "adresse",
        "calle",
        "direccion",
        "dirección",
    ),
    "billing_street2": (
        "street2",
        "address2",
        "addressline2",
        "billingstreet2",
        "billingaddress2",
        "line2",
        "suite",
        "apt",
    ),
    "billing_city": (
        "city",
        "town",
        "billingcity",
        "mailingcity",
        "locality",
        "ort",
        "stadt",
        "ville",
        "ciudad",
    ),
    "billing_province": (
        "state",
        "province",
        "region",
        "stateprovince",
        "provincestate",
        "billingstate",
        "billingprovince",
        "mailingstate",
        "county",
        "staterregion",
        "bundesland",
        "kanton",
    ),
    "billing_country": (
        "country",
        "countrycode",
        "billingcountry",
        "mailingcountry",
        "countryregion",
        "land",
        "pays",
        "pais",
        "país",
    ),
    "billing_postal_code": (
        "zip",
        "zipcode",
        "postalcode",
        "postcode",
        "postal",
        "billingzip",
        "billingpostalcode",
        "billingcode",
        "mailingzip",
        "mailingpostalcode",
        "plz",
        "postleitzahl",
        "codepostal",
        "cp",
        "npa",
        "codigopostal",
    ),
    "billing_phone": (
        "phone",
        "phonenumber",
        "telephone",
        "tel",
        "workphone",
        "businessphone",
        "billingphone",
        "telefon",
        "téléphone",
        "telephone",
        "teléfono",
        "tél",
        "tel.",
    ),
    "billing_email": (
        "email",
        "emailaddress",
        "mail",
        "e-mail",
        "billingemail",
        "workemail",
        "emailid",
        "courriel",
        "correo",
    ),
}
_FIRST = ("firstname", "givenname", "first")
_LAST = ("lastname", "surname", "familyname", "last")


def _guess(header: str) -> tuple[str, str] | None:
    """(generic column, why) for one header, or None."""
    key = header_key(header)
    for column, words in _SYNONYMS.items():
        if key in words:
            return column, f"a usual name for {column}"
    for column, words in _SYNONYMS.items():
        close = difflib.get_close_matches(key, words, n=1, cutoff=0.85)
        if close:
            return column, f'close to "{close[0]}"'
    return None


def _toml_list(names: list[str]) -> str:
    return "[" + ", ".join(f'"{n}"' for n in names) + "]"


def draft_profile(names: list[str], system: str = "") -> str:
    """A starting profile (TOML) for an export with these headers: each mapping is a commented guess."""
    mapped: dict[str, tuple[str, str]] = {}
    first = next((h for h in names if header_key(h) in _FIRST), None)
    last = next((h for h in names if header_key(h) in _LAST), None)
    for header in names:
        guess = _guess(header)
        if guess is not None and guess[0] not in mapped and header not in (first, last):
            mapped[guess[0]] = (header, guess[1])
    has_id = "crm_id" in mapped
    lines = [
        f'system = "{system or "My CRM"}"',
        'description = "drafted by crmsync from the export\'s headers: check every guess"',
        f"key = {_toml_list(['crm_id', 'email'] if has_id else ['email'])}"
        + (
            "  # the id column; the e-mail when there is none"
            if has_id
            else "  # no id column found: the e-mail is the key"
        ),
        'required = ["contact_name"]',
        "",
        "[columns]",
    ]
    for column in CRM_COLUMNS:
        if column in mapped and not (column == "contact_name" and first):
            header, why = mapped[column]
            lines.append(f'{column} = "{header}"  # guessed: {why}')
    unread = [h for h in names if h not in {m[0] for m in mapped.values()} and h not in (first, last)]
    if first or last:
        parts = [h for h in (first, last) if h]
        lines += ["", "[[transforms]]", 'kind = "join"  # guessed: the first and last name', f"from = {_toml_list(parts)}",
                  'to = "contact_name"']  # fmt: skip
    if "billing_street1" in mapped:
        lines += ["", "# an address needs a name: the contact's, else the business's", "[[transforms]]",
                  'kind = "coalesce"', 'from = ["contact_name", "business_name"]', 'to = "billing_name"',
                  'when = ["billing_street1", "billing_postal_code", "billing_email", "billing_phone"]']  # fmt: skip
    if unread:
        lines += ["", "# not mapped (read by no generic column): " + ", ".join(f'"{h}"' for h in unread)]
    return "\n".join(lines) + "\n"
