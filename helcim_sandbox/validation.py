"""Request validation the way Helcim answers it.

Customer rules (create and update):

* at least one of ``contactName`` / ``businessName`` non-empty, else the LIVE
  string error ``{"errors": "Contact name or business name should be filled"}``;
* an address that has any non-empty field needs ``name``, ``street1`` and
  ``postalCode``; ``country`` is ISO 3166-1 alpha-3; ``province`` is a 2-letter
  code of that country, required for CAN and USA;
* phones (``cellPhone`` and address ``phone``) have 10 to 15 digits once the
  usual punctuation (space, ``-``, ``.``, ``(``, ``)``, leading ``+``) is removed;
* e-mails have a plausible ``local@domain.tld`` syntax;
* ``customerCode`` is at most 50 characters without control characters
  (sandbox choice: the real limit is not documented);
* every text field is at most as long as :data:`MAX_LENGTHS` says (Helcim's
  real limits are not documented; these are conservative, and crmsync's
  pipeline refuses the same lengths, so keep the two in step):

  =================  =====  ==========================================
  field              chars  where
  =================  =====  ==========================================
  ``customerCode``      50  customer
  ``contactName``      100  customer
  ``businessName``     100  customer
  ``cellPhone``         30  customer, counted as sent (punctuation too)
  ``name``             100  ``billingAddress`` / ``shippingAddress``
  ``street1``          100  address
  ``street2``          100  address
  ``city``              60  address
  ``province``          60  address (still a 2-letter code for CAN/USA)
  ``country``            3  address
  ``postalCode``        16  address
  ``phone``             30  address, counted as sent (punctuation too)
  ``email``            254  address
  =================  =====  ==========================================

  A length counts the characters of the value without its surrounding
  whitespace (the value that is stored). Over the limit, on create and on
  update: ``{"errors": {"billingAddress.city": "city must be at most 60
  characters"}}``; this error replaces any other of the same field.

Field errors come back as ``{"errors": {"<field>": "<message>"}}``.

Bank-account creation rules follow the create-bank request of the reference
and answer ``{"message": "..."}`` like Helcim's bank endpoints.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import pycountry

ADDRESS_FIELDS = ("name", "street1", "street2", "city", "province", "country", "postalCode", "phone", "email")
NAME_ERROR = "Contact name or business name should be filled"
NAME_FIELDS = frozenset({"contactName", "businessName"})
#: Longest accepted value of each text field, in characters (see the module docstring).
#: Customer fields by their request name; address fields by their key in either address.
MAX_LENGTHS: dict[str, int] = {
    "customerCode": 50,
    "contactName": 100,
    "businessName": 100,
    "cellPhone": 30,
    "name": 100,
    "street1": 100,
    "street2": 100,
    "city": 60,
    "province": 60,
    "country": 3,
    "postalCode": 16,
    "phone": 30,
    "email": 254,
}
MAX_CODE_LENGTH = MAX_LENGTHS["customerCode"]

_PHONE_PUNCTUATION = re.compile(r"[\s\-.()]")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ValidationFailed(Exception):
    """Carries the exact JSON body Helcim would answer with a 400."""

    def __init__(self, body: Any) -> None:
        super().__init__(str(body))
        self.body = body


@lru_cache(maxsize=1)
def alpha3_codes() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.countries)


@lru_cache(maxsize=1)
def alpha2_to_alpha3() -> dict[str, str]:
    return {c.alpha_2: c.alpha_3 for c in pycountry.countries}


@lru_cache(maxsize=4)
def subdivision_codes(alpha2: str) -> frozenset[str]:
    """2-letter province/state codes of a country (``AB``, ``CA``, ``DC`` …)."""
    codes = set()
    for sub in pycountry.subdivisions.get(country_code=alpha2) or []:
        code = sub.code.split("-", 1)[1]
        if len(code) == 2:
            codes.add(code)
    return frozenset(codes)


PROVINCE_COUNTRIES = {"CAN": "CA", "USA": "US"}


def as_text(value: Any) -> str:
    """Helcim stores strings; numbers sent as JSON numbers are accepted as text.

    Raises ``TypeError("a string")`` for objects and arrays, and
    ``TypeError("valid Unicode text")`` for a string with unpaired surrogates
    (JSON can spell ``"\\ud800"``; no database can store it).
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise TypeError("valid Unicode text") from None
        return value.strip()
    raise TypeError("a string")


def text_problem(key: str, exc: TypeError) -> str:
    """The message of a field :func:`as_text` refused."""
    return f"{key} must be {exc.args[0]}"


def phone_ok(value: str) -> bool:
    digits = _PHONE_PUNCTUATION.sub("", value)
    if digits.startswith("+"):
        digits = digits[1:]
    return digits.isdigit() and 10 <= len(digits) <= 15


def email_ok(value: str) -> bool:
    return len(value) <= 254 and _EMAIL.match(value) is not None and ".." not in value


def clean_address(
    raw: Any, label: str, errors: dict[str, str], base: dict[str, str] | None = None
) -> dict[str, str] | None:
    """Validate one address object. ``None`` means "no address given".

    On an update, ``base`` is the stored address: the keys given replace its
    keys and the merged address is validated. An object whose given values are
    all empty clears the address (returned as ``{}``; a sandbox choice, the
    real behaviour is not documented).
    """
    if raw is None or raw == "":
        return None
    if not isinstance(raw, dict):
        errors[label] = f"{label} must be an object"
        return None
    given: dict[str, str] = {}
    for key in ADDRESS_FIELDS:
        if key in raw:
            try:
                given[key] = as_text(raw[key])
            except TypeError as exc:
                errors[f"{label}.{key}"] = text_problem(key, exc)
    if not any(given.values()):
        return {}
    address = {**dict.fromkeys(ADDRESS_FIELDS, ""), **(base or {}), **given}
    for key in ("name", "street1", "postalCode"):
        if not address[key]:
            errors[f"{label}.{key}"] = f"{key} is required"
    country = address["country"].upper()
    if country:
        if country not in alpha3_codes():
            errors[f"{label}.country"] = "country must be an ISO 3166-1 alpha-3 code such as CAN or USA"
        address["country"] = country
    province = address["province"].upper()
    if country in PROVINCE_COUNTRIES:
        if not province:
            errors[f"{label}.province"] = f"province is required when country is {country}"
        elif province not in subdivision_codes(PROVINCE_COUNTRIES[country]):
            errors[f"{label}.province"] = (
                f"{province!s} is not a 2-letter province or state code of {country}"
            )
    address["province"] = province
    if address["phone"] and not phone_ok(address["phone"]):
        errors[f"{label}.phone"] = "phone must have 10 to 15 digits"
    if address["email"] and not email_ok(address["email"]):
        errors[f"{label}.email"] = "email is not a valid email address"
    for key in ADDRESS_FIELDS:
        _check_length(address[key], key, f"{label}.{key}", errors)
    return address


def _check_length(value: str, field: str, path: str, errors: dict[str, str]) -> None:
    """Record the too-long error of ``field`` (it replaces any other error of that field)."""
    limit = MAX_LENGTHS[field]
    if len(value) > limit:
        errors[path] = f"{field} must be at most {limit} characters"


def clean_customer(body: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate a create body, or an update body against the ``current`` customer.

    Returns only the fields the body sets: ``customerCode``, ``contactName``,
    ``businessName``, ``cellphone``, ``billingAddress``, ``shippingAddress``
    (an address is the full merged dict, or ``{}`` meaning "clear it").
    """
    if not isinstance(body, dict):
        raise ValidationFailed({"errors": "Request body must be a JSON object"})
    errors: dict[str, str] = {}
    fields: dict[str, Any] = {}
    for key, out in (
        ("customerCode", "customerCode"),
        ("contactName", "contactName"),
        ("businessName", "businessName"),
        ("cellPhone", "cellphone"),
        ("cellphone", "cellphone"),
    ):
        if key in body:
            try:
                fields[out] = as_text(body[key])
            except TypeError as exc:
                errors[key] = text_problem(key, exc)
    if not (fields.get("contactName") or fields.get("businessName")) and not errors.keys() & NAME_FIELDS:
        raise ValidationFailed({"errors": NAME_ERROR})
    code = fields.get("customerCode", "")
    if len(code) > MAX_CODE_LENGTH or _CONTROL.search(code):
        errors["customerCode"] = f"customerCode must be at most {MAX_CODE_LENGTH} printable characters"
    if fields.get("cellphone") and not phone_ok(fields["cellphone"]):
        errors["cellPhone"] = "cellPhone must have 10 to 15 digits"
    for out, field in (
        ("contactName", "contactName"),
        ("businessName", "businessName"),
        ("cellphone", "cellPhone"),
    ):
        _check_length(fields.get(out, ""), field, field, errors)
    for key in ("billingAddress", "shippingAddress"):
        if key in body:
            base = (current or {}).get(key) or None
            address = clean_address(body[key], key, errors, base)
            if address is not None:
                fields[key] = address
    if errors:
        raise ValidationFailed({"errors": errors})
    return fields


def clean_bank_account(body: Any) -> dict[str, Any]:
    """Validate a create-bank-account body (POST /customers/{id}/bank-accounts)."""
    if not isinstance(body, dict):
        raise ValidationFailed({"message": "Request body must be a JSON object"})

    def text(key: str) -> str:
        try:
            return as_text(body.get(key))
        except TypeError as exc:
            raise ValidationFailed({"message": text_problem(key, exc)}) from None

    for key in (
        "accountCorporate",
        "accountType",
        "bankAccountNumber",
        "streetAddress",
        "city",
        "provinceAlpha2",
        "countryAlpha2",
        "postalCode",
    ):
        if not text(key):
            raise ValidationFailed({"message": f"{key} is required"})
    corporate, account_type = text("accountCorporate"), text("accountType")
    if corporate not in ("1", "2"):
        raise ValidationFailed({"message": "accountCorporate must be 1 (personal) or 2 (corporate)"})
    if account_type not in ("1", "2"):
        raise ValidationFailed({"message": "accountType must be 1 (checking) or 2 (savings)"})
    country = text("countryAlpha2").upper()
    if country not in ("CA", "US"):
        raise ValidationFailed({"message": "countryAlpha2 must be CA or US"})
    province = text("provinceAlpha2").upper()
    if province not in subdivision_codes(country):
        raise ValidationFailed(
            {"message": f"provinceAlpha2 {province} is not a province or state of {country}"}
        )
    number = text("bankAccountNumber")
    low = 7 if country == "CA" else 8
    if not (number.isdigit() and low <= len(number) <= 12):
        raise ValidationFailed(
            {
                "message": f"bankAccountNumber must be {low}-12 digits for {'Canadian' if country == 'CA' else 'US'} bank accounts"
            }
        )
    institution = transit = routing = ""
    if country == "CA":
        institution, transit = text("bankFinancialNumber"), text("bankTransitNumber")
        if not (institution.isdigit() and len(institution) == 3):
            raise ValidationFailed(
                {"message": "bankFinancialNumber must be 3 digits for Canadian bank accounts"}
            )
        if not (transit.isdigit() and len(transit) == 5):
            raise ValidationFailed(
                {"message": "bankTransitNumber must be 5 digits for Canadian bank accounts"}
            )
    else:
        routing = text("bankRoutingNumber")
        if not (routing.isdigit() and len(routing) == 9):
            raise ValidationFailed({"message": "bankRoutingNumber must be 9 digits for US bank accounts"})
    first, last, company = text("firstName"), text("lastName"), text("companyName")
    if not company and not (first and last):
        raise ValidationFailed(
            {"message": "Either firstName and lastName, or companyName, must be specified"}
        )
    return {
        "account_corporate": "PERSONAL" if corporate == "1" else "CORPORATE",
        "account_type": "CHECKING" if account_type == "1" else "SAVINGS",
        "account_l4": number[-4:],
        "bank_id_number": institution,
        "transit_number": transit,
        "routing_number": routing,
        "address": {
            "name": company or f"{first} {last}",
            "street1": text("streetAddress"),
            "street2": "",
            "city": text("city"),
            "province": province,
            "country": alpha2_to_alpha3()[country],
            "postalCode": text("postalCode"),
            "phone": "",
            "email": "",
        },
    }


def clean_pad_update(body: Any) -> dict[str, Any]:
    """Validate PUT .../pads/{padId}: optional accepted, ipAddress, type, status."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ValidationFailed({"message": "Request body must be a JSON object"})
    out: dict[str, Any] = {}
    for key, allowed in (("accepted", (0, 1)), ("type", (1, 2)), ("status", (1, 2))):
        if key in body:
            try:
                value = int(body[key])
            except (TypeError, ValueError, OverflowError):  # OverflowError: 1e400 is infinity
                value = -1
            if value not in allowed:
                raise ValidationFailed({"message": f"{key} must be one of {', '.join(map(str, allowed))}"})
            out[key] = value
    if "ipAddress" in body:
        try:
            out["ipAddress"] = as_text(body["ipAddress"])
        except TypeError as exc:
            raise ValidationFailed({"message": text_problem("ipAddress", exc)}) from None
    return out
