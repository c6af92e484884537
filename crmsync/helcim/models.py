"""Typed Helcim objects, parsed so that no quirk of the API leaks past the client.

Quirks absorbed here (see ``../shared/reference/helcim-customer-api.md``):

* a missing address is the string ``""``, not an object → ``None``;
* the cell phone is ``cellphone`` in customer responses and ``cellPhone`` in
  the set-default-card record and in requests → :attr:`Customer.cell_phone`;
* strings are never null, ``"0000-00-00 00:00:00"`` means "never" → ``None``;
* ``default``, ``verified`` and ``ready`` arrive as booleans, 0/1 or "0"/"1";
* ids may arrive as numbers or digit strings; ``cardExpiry`` as ``"0128"`` or 128.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ZERO_DATE = "0000-00-00 00:00:00"


def text(value: Any) -> str:
    """Helcim's strings: None becomes "", numbers become their digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value).strip()


def integer(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    raw = text(value)
    return int(raw) if raw.lstrip("-").isdigit() else 0


def flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return text(value).lower() in ("1", "true", "yes")


def moment(value: Any) -> datetime | None:
    """``"YYYY-MM-DD HH:MM:SS"`` (merchant-local, no zone) → naive datetime; zero-date → None."""
    raw = text(value)
    if not raw or raw == ZERO_DATE:
        return None
    try:
        return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


@dataclass(frozen=True)
class Address:
    name: str = ""
    street1: str = ""
    street2: str = ""
    city: str = ""
    province: str = ""
    country: str = ""
    postal_code: str = ""
    phone: str = ""
    email: str = ""

    @classmethod
    def from_api(cls, raw: Any) -> Address | None:
        """An Address object, or None for Helcim's ``""`` / an all-empty object."""
        if not isinstance(raw, Mapping):
            return None
        address = cls(
            name=text(raw.get("name")),
            street1=text(raw.get("street1")),
            street2=text(raw.get("street2")),
            city=text(raw.get("city")),
            province=text(raw.get("province")),
            country=text(raw.get("country")),
            postal_code=text(raw.get("postalCode")),
            phone=text(raw.get("phone")),
            email=text(raw.get("email")),
        )
        return address if address.is_given() else None

    def is_given(self) -> bool:
        return any(getattr(self, f) for f in self.__dataclass_fields__)

    def to_api(self) -> dict[str, str]:
        return {
            "name": self.name,
            "street1": self.street1,
            "street2": self.street2,
            "city": self.city,
            "province": self.province,
            "country": self.country,
            "postalCode": self.postal_code,
            "phone": self.phone,
            "email": self.email,
        }


@dataclass(frozen=True)
class Card:
    id: int
    holder_name: str
    f6l4: str
    token: str
    expiry: str  # MMYY
    is_default: bool
    date_created: datetime | None
    date_updated: datetime | None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Card:
        expiry = text(raw.get("cardExpiry"))
        return cls(
            id=integer(raw.get("id")),
            holder_name=text(raw.get("cardHolderName")),
            f6l4=text(raw.get("cardF6L4")),
            token=text(raw.get("cardToken")),
            expiry=expiry.zfill(4) if expiry.isdigit() else expiry,
            is_default=flag(raw.get("default")),
            date_created=moment(raw.get("dateCreated")),
            date_updated=moment(raw.get("dateUpdated")),
        )

    @property
    def first6(self) -> str:
        return self.f6l4[:6]

    @property
    def last4(self) -> str:
        return self.f6l4[-4:]


@dataclass(frozen=True)
class Customer:
    id: int
    code: str
    contact_name: str
    business_name: str
    cell_phone: str
    billing: Address | None
    shipping: Address | None
    cards: tuple[Card, ...]
    date_created: datetime | None
    date_updated: datetime | None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Customer:
        cards = raw.get("cards")
        return cls(
            id=integer(raw.get("id")),
            code=text(raw.get("customerCode")),
            contact_name=text(raw.get("contactName")),
            business_name=text(raw.get("businessName")),
            cell_phone=text(raw["cellphone"] if "cellphone" in raw else raw.get("cellPhone")),
            billing=Address.from_api(raw.get("billingAddress")),
            shipping=Address.from_api(raw.get("shippingAddress")),
            cards=tuple(Card.from_api(c) for c in cards if isinstance(c, Mapping))
            if isinstance(cards, list)
            else (),
            date_created=moment(raw.get("dateCreated")),
            date_updated=moment(raw.get("dateUpdated")),
        )


@dataclass(frozen=True)
class CustomerInput:
    """The fields crmsync writes on create or update (CRM-owned fields only)."""

    contact_name: str = ""
    business_name: str = ""
    cell_phone: str = ""
    billing: Address | None = None
    shipping: Address | None = None
    code: str = ""

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "contactName": self.contact_name,
            "businessName": self.business_name,
            "cellPhone": self.cell_phone,
        }
        if self.code:
            body["customerCode"] = self.code
        if self.billing is not None:
            body["billingAddress"] = self.billing.to_api()
        if self.shipping is not None:
            body["shippingAddress"] = self.shipping.to_api()
        return body


@dataclass(frozen=True)
class CreateResult:
    """The outcome of a safe create: the customer, and whether it already existed."""

    customer: Customer
    recovered: bool = False  # True: found by customerCode after a lost or refused answer


@dataclass(frozen=True)
class DefaultCardRecord:
    """Helcim's internal customer record returned by set-default-card (LIVE shape)."""

    id: int
    code: str
    default_card_id: int
    default_bank_account_id: int
    merchant_id: int
    cell_phone: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, body: Any) -> DefaultCardRecord:
        record = body.get("customer", body) if isinstance(body, Mapping) else {}
        if not isinstance(record, Mapping):
            record = {}
        return cls(
            id=integer(record.get("id")),
            code=text(record.get("customerCode")),
            default_card_id=integer(record.get("defaultCard")),
            default_bank_account_id=integer(record.get("defaultBankAccount")),
            merchant_id=integer(record.get("merchantId")),
            cell_phone=text(record.get("cellPhone", record.get("cellphone"))),
            raw=dict(record),
        )


@dataclass(frozen=True)
class BankAccount:
    id: int
    customer_id: int
    token: str
    account_type: str  # CHECKING | SAVINGS
    corporate: str  # PERSONAL | CORPORATE
    verified: bool
    ready: bool
    institution: str  # CA, 3 digits
    transit: str  # CA, 5 digits
    routing: str  # US, 9 digits
    last4: str
    address: Address | None
    date_created: datetime | None
    date_updated: datetime | None
    date_last_used: datetime | None
    date_verified: datetime | None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> BankAccount:
        return cls(
            id=integer(raw.get("id")),
            customer_id=integer(raw.get("customerId")),
            token=text(raw.get("bankToken")),
            account_type=text(raw.get("accountType")).upper(),
            corporate=text(raw.get("accountCorporate")).upper(),
            verified=flag(raw.get("verified")),
            ready=flag(raw.get("ready")),
            institution=text(raw.get("bankIdNumber")),
            transit=text(raw.get("transitNumber")),
            routing=text(raw.get("routingNumber")),
            last4=text(raw.get("bankAccountNumberL4"))[-4:],
            address=Address.from_api(raw.get("address")),
            date_created=moment(raw.get("dateCreated")),
            date_updated=moment(raw.get("dateUpdated")),
            date_last_used=moment(raw.get("dateLastUsed")),
            date_verified=moment(raw.get("dateVerified")),
        )

    @property
    def country(self) -> str:
        return "USA" if self.routing else "CAN"


@dataclass(frozen=True)
class BankAccountInput:
    """POST /customers/{id}/bank-accounts. The full account number is sent, never kept."""

    account_number: str = field(repr=False)
    country: str  # CA or US (alpha-2, as this endpoint wants)
    street: str
    city: str
    province: str
    postal_code: str
    corporate: bool = False
    savings: bool = False
    institution: str = ""
    transit: str = ""
    routing: str = ""
    first_name: str = ""
    last_name: str = ""
    company_name: str = ""

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "accountCorporate": 2 if self.corporate else 1,
            "accountType": 2 if self.savings else 1,
            "bankAccountNumber": self.account_number,
            "streetAddress": self.street,
            "city": self.city,
            "provinceAlpha2": self.province,
            "countryAlpha2": self.country,
            "postalCode": self.postal_code,
        }
        if self.country == "CA":
            body |= {"bankFinancialNumber": self.institution, "bankTransitNumber": self.transit}
        else:
            body["bankRoutingNumber"] = self.routing
        if self.company_name:
            body["companyName"] = self.company_name
        else:
            body |= {"firstName": self.first_name, "lastName": self.last_name}
        return body


PAD_PENDING, PAD_ACCEPTED, PAD_REVOKED = "pending", "accepted", "revoked"


@dataclass(frozen=True)
class Pad:
    id: int
    customer_id: int
    bank_account_id: int
    accepted: bool
    active: bool  # status 1
    pad_type: int  # 1 personal, 2 business
    ip_address: str
    date_created: datetime | None
    date_updated: datetime | None
    date_accepted: datetime | None
    date_earliest_debit: datetime | None
    date_revoked: datetime | None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Pad:
        return cls(
            id=integer(raw.get("id")),
            customer_id=integer(raw.get("customerId")),
            bank_account_id=integer(raw.get("bankAccountId")),
            accepted=flag(raw.get("accepted")),
            active=integer(raw.get("status")) != 2,
            pad_type=integer(raw.get("type")) or 1,
            ip_address=text(raw.get("ipAddress")),
            date_created=moment(raw.get("dateCreated")),
            date_updated=moment(raw.get("dateUpdated")),
            date_accepted=moment(raw.get("dateAccepted")),
            date_earliest_debit=moment(raw.get("dateEarliestDebit")),
            date_revoked=moment(raw.get("dateRevoked")),
        )

    @property
    def state(self) -> str:
        """The product page's words: revoked (dateRevoked set or inactive), accepted, pending."""
        if self.date_revoked is not None or not self.active:
            return PAD_REVOKED
        return PAD_ACCEPTED if self.accepted else PAD_PENDING
