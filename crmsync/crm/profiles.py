"""Mapping profiles: how one CRM's export headers become crmsync's generic columns.

A profile is a TOML file in ``schemas/profiles/`` (``--profile NAME``) or
anywhere else (``--profile path/to/file.toml``)::

    system = "HubSpot"                           # the system's name, as people know it
    description = "what export this reads"
    required = ["contact_name", …]               # generic columns the export must provide
    key = ["crm_id", "email"]                    # the id column when the export has one, else the e-mail
    missing_values = ["null", "N/A"]             # whole cells that mean "no value" in this system's exports

    [sections]                                   # columns after a marker belong to an associated record
    company = "Record ID - Company"              # … and are named "company:City" below

    [columns]                                    # generic column = export header
    crm_id = "Record ID"
    business_name = ["Company Name", "Company"]  # several accepted headers: the first present wins

    [[transforms]]                               # run in order, after [columns]
    kind = "join"                                # join | split_lines | coalesce | split_fields
    from = ["First Name", "Last Name"]
    to = "contact_name"
    separator = " "                              # join and split_fields (default " ")
    when = ["billing_city", …]                   # optional: only on rows where one of these is filled in

    [crm_import]                                 # what the system's own import takes (crm_import/)
    match = "Record ID"                          # the header an update is matched on
    columns = ["Record ID", "First Name", …]     # the import file's columns, in order
    country = "alpha-2"                          # how the import wants countries (default: alpha-3)

In ``from`` and ``when``, a generic column name means that (mapped) column;
any other name is a header of the export. Header matching ignores case,
surrounding spaces, and ``_``/space/``-`` inside names. Generic columns that a
profile does not provide are empty.

* ``join``: the non-empty sources joined with ``separator``;
* ``split_lines``: a multi-line value (``"12 Main St\\nSuite 4"``): its first
  line goes to ``to[0]``, the other lines to ``to[1]`` joined with ``", "``;
* ``coalesce``: the first non-empty source;
* ``split_fields``: one value holding several fields between ``separator``\\ s
  (Mailchimp's ``Address``): when it has exactly as many parts as ``to`` has
  columns, each part goes to its column; otherwise the whole value goes to
  ``to[0]`` (and validation or the address parser says what is wrong).

**Keys.** ``key`` names where a row's crm_id (Helcim's customerCode) comes
from: ``crm_id`` (the mapped id column), ``email`` (the system has no id
column: the code is derived from the e-mail, see :mod:`crmsync.crm.keys`), or
both in order (the id column when the export has one, else the e-mail).

**Spreadsheet artefacts**, handled on every column a profile reads: a leading
``'`` before a digit, ``(``, ``+``, ``-``, ``=``, ``@``, a tab or a CR is a text
marker (Shopify writes ``'5897398649016``; crmsync's own CSV writer writes
``'+1…``) and is removed; a whole cell equal to one of ``missing_values`` is
empty. Headers that repeat, or differ only in case, are fatal only when the
profile reads that name: the message names both columns as they are spelled.

Mapping is pure: :func:`apply_profile` takes the export's frame and returns the
generic frame. Only :func:`load_profile` reads a file.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crmsync.errors import InputFileError, MissingColumnsError, UsageError
from crmsync.schemas.crm import CRM_COLUMNS
from crmsync.text import arrow_strings, byte_table, keep_bytes, layout

__all__ = [
    "KEY_KINDS",
    "PROFILES_DIR",
    "Headers",
    "ImportShape",
    "MappedExport",
    "Profile",
    "Transform",
    "apply_profile",
    "available_profiles",
    "builtin_profiles",
    "fills",
    "header_key",
    "key_columns",
    "load_profile",
]

PROFILES_DIR = Path(__file__).resolve().parent.parent / "schemas" / "profiles"
TRANSFORM_KINDS = ("join", "split_lines", "coalesce", "split_fields")
KEY_KINDS = ("crm_id", "email")
_SEPARATORS = re.compile(r"[\s_\-\u00a0\ufeff\u200b]+")
_KEYS = {"system", "description", "required", "columns", "transforms", "key", "missing_values"}
_KEYS |= {"sections", "crm_import"}


def header_key(header: str) -> str:
    """How headers are compared: case-folded, without spaces, ``_`` or ``-``."""
    return _SEPARATORS.sub("", header).casefold()


@dataclass(frozen=True)
class Transform:
    kind: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    separator: str = " "
    when: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportShape:
    """The file a system imports (``[crm_import]``): the header it matches updates on, its columns."""

    match: str
    columns: tuple[str, ...]
    country: str = "alpha-3"  # or "alpha-2"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    columns: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    transforms: tuple[Transform, ...] = ()
    system: str = ""
    key: tuple[str, ...] = ("crm_id",)
    missing_values: tuple[str, ...] = ()
    sections: dict[str, str] = field(default_factory=dict)
    crm_import: ImportShape | None = None

    def sources_of(self, column: str, _seen: frozenset[str] = frozenset()) -> list[tuple[str, ...]]:
        """The export headers a generic column comes from: each tuple is one alternative set of headers
        that must ALL be present (a join needs every part), and one tuple per way the column is filled."""
        seen = _seen | {column}
        ways: list[tuple[str, ...]] = []
        if column in self.columns:
            ways.extend((header,) for header in self.columns[column])
        for transform in self.transforms:
            if column in transform.targets:
                headers = tuple(s for s in transform.sources if s not in CRM_COLUMNS)
                if headers and transform.kind == "coalesce":
                    ways.extend((header,) for header in headers)  # any one of them will do
                elif headers:
                    ways.append(headers)
                for generic in (s for s in transform.sources if s in CRM_COLUMNS and s not in seen):
                    ways.extend(self.sources_of(generic, seen))
        return list(dict.fromkeys(ways))

    def known_headers(self) -> list[str]:
        """Every export header this profile reads."""
        names = [header for headers in self.columns.values() for header in headers]
        for transform in self.transforms:
            names.extend(s for s in (*transform.sources, *transform.when) if s not in CRM_COLUMNS)
        return list(dict.fromkeys(names))

    @property
    def email_keyed(self) -> bool:
        """Whether the e-mail can be the key (always, or when the export has no id column)."""
        return "email" in self.key

    @property
    def label(self) -> str:
        return self.system or self.name


def available_profiles() -> list[str]:
    return sorted(path.stem for path in PROFILES_DIR.glob("*.toml"))


def builtin_profiles() -> list[Profile]:
    """Every built-in profile, parsed."""
    return [load_profile(name) for name in available_profiles()]


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise UsageError(f"{where} must be a header name or a non-empty list of them")
    return tuple(value)


def _generic(name: str, where: str) -> str:
    if name not in CRM_COLUMNS:
        close = difflib.get_close_matches(name, CRM_COLUMNS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise UsageError(f"{where}: {name!r} is not a generic column{hint}")
    return name


def _transform(spec: Any, at: str) -> Transform:
    if not isinstance(spec, dict):
        raise UsageError(f"{at} must be a table")
    extra = set(spec) - {"kind", "from", "to", "separator", "when"}
    if extra:
        raise UsageError(f"{at}: unknown key(s) {', '.join(sorted(extra))}")
    kind = spec.get("kind")
    if kind not in TRANSFORM_KINDS:
        raise UsageError(f"{at}: kind must be one of {', '.join(TRANSFORM_KINDS)}, not {kind!r}")
    sources = _names(spec.get("from"), f"{at} from")
    targets = tuple(_generic(t, f"{at} to") for t in _names(spec.get("to"), f"{at} to"))
    if kind == "split_lines" and (len(sources) != 1 or len(targets) != 2):
        raise UsageError(f"{at}: split_lines takes one source and two targets (street1, street2)")
    if kind == "split_fields" and (len(sources) != 1 or len(targets) < 2):
        raise UsageError(f"{at}: split_fields takes one source and two or more targets")
    if kind in ("join", "coalesce") and len(targets) != 1:
        raise UsageError(f"{at}: {kind} has exactly one target")
    separator = spec.get("separator", " ")
    if not isinstance(separator, str) or (kind == "split_fields" and not separator):
        raise UsageError(f"{at}: separator must be text")
    when = _names(spec["when"], f"{at} when") if "when" in spec else ()
    return Transform(kind, sources, targets, separator, when)


def _key(document: dict[str, Any], where: str) -> tuple[str, ...]:
    key = document.get("key", ["crm_id"])
    key = [key] if isinstance(key, str) else key
    if not isinstance(key, list) or not key or any(k not in KEY_KINDS for k in key):
        raise UsageError(f'{where}: key must be crm_id, email, or ["crm_id", "email"]')
    return tuple(dict.fromkeys(str(k) for k in key))


def _import_shape(table: Any, where: str) -> ImportShape | None:
    if table is None:
        return None
    if not isinstance(table, dict) or set(table) - {"match", "columns", "country"}:
        raise UsageError(f"{where} [crm_import]: takes match, columns and country")
    country = str(table.get("country", "alpha-3"))
    if country not in ("alpha-2", "alpha-3"):
        raise UsageError(f"{where} [crm_import]: country must be alpha-2 or alpha-3")
    return ImportShape(
        str(table.get("match", "")), _names(table.get("columns"), f"{where} [crm_import] columns"), country
    )


def parse_profile(name: str, document: dict[str, Any]) -> Profile:
    """Check a profile's TOML document and build the :class:`Profile` (UsageError names what is wrong)."""
    where = f"profile {name!r}"
    unknown = set(document) - _KEYS
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    columns_table = document.get("columns", {})
    if not isinstance(columns_table, dict):
        raise UsageError(f"{where}: [columns] must be a table of generic column = header")
    columns = {
        _generic(target, f"{where} [columns]"): _names(headers, f"{where} [columns] {target}")
        for target, headers in columns_table.items()
    }
    transforms = tuple(
        _transform(spec, f"{where} transform #{number}")
        for number, spec in enumerate(document.get("transforms", []), start=1)
    )
    required_list = document.get("required", [])
    if not isinstance(required_list, list):
        raise UsageError(f"{where}: required must be a list of generic columns")
    required = tuple(_generic(str(r), f"{where} required") for r in required_list)
    sections = document.get("sections", {})
    if not isinstance(sections, dict) or not all(isinstance(v, str) for v in sections.values()):
        raise UsageError(f"{where}: [sections] must be a table of section name = marker header")
    missing_values = document.get("missing_values", [])
    if not isinstance(missing_values, list) or not all(isinstance(v, str) and v for v in missing_values):
        raise UsageError(f"{where}: missing_values must be a list of texts")
    profile = Profile(
        name, str(document.get("description", "")), columns, required, transforms,
        system=str(document.get("system", "")), key=_key(document, where),
        missing_values=tuple(missing_values), sections={str(k): v for k, v in sections.items()},
        crm_import=_import_shape(document.get("crm_import"), where),
    )  # fmt: skip
    for column in required + key_columns(profile):
        if not profile.sources_of(column):
            raise UsageError(
                f"{where}: required column {column} is neither mapped nor produced by a transform"
            )
    return profile


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a profile file by path (``*.toml``)."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path or "\\" in name_or_path:
        path = candidate
    else:
        path = PROFILES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(available_profiles())
        raise UsageError(
            f"unknown profile {name_or_path!r}: use auto, one of {known}, or the path of a .toml profile"
        )
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"profile {path}: not valid TOML ({error})") from None
    return parse_profile(path.stem, document)


# -- an export's headers ---------------------------------------------------------


class Headers:
    """An export's headers as a profile sees them: by section, compared with :func:`header_key`.

    Columns after a section's marker (HubSpot's ``Record ID - Company``) are
    named ``section:Header``; the marker itself is ``section:<marker>``. A name
    two columns share (repeated, or differing only in case) cannot be read.
    """

    def __init__(self, headers: list[str], sections: dict[str, str]) -> None:
        markers = {header_key(marker): name for name, marker in sections.items()}
        section = ""
        self.labels = headers
        self._by_key: dict[str, list[str]] = {}
        self.qualified: dict[str, str] = {}
        for header in headers:
            spelled = _spelling(header)
            section = markers.get(header_key(spelled), section)
            if not header_key(spelled):
                continue
            name = f"{section}:{spelled}" if section else spelled
            self._by_key.setdefault(header_key(name), []).append(header)
            self.qualified[header] = name

    def find(self, name: str) -> str | None:
        """The label of the one column called ``name`` (None when absent); shared names are refused."""
        found = self._by_key.get(header_key(name))
        if not found:
            return None
        if len(found) > 1:
            positions = [self.labels.index(label) + 1 for label in found]
            spelled = " and ".join(
                f'"{_spelling(label)}" (column {at})' for label, at in zip(found, positions, strict=True)
            )
            raise InputFileError(
                f"the export has two columns named like {name!r}: {spelled}; the profile reads that name, "
                "so it cannot tell which one to use: rename or remove one of them"
            )
        return found[0]

    def has(self, name: str) -> bool:
        return bool(self._by_key.get(header_key(name)))

    def names(self) -> list[str]:
        """Every non-empty header, section-qualified."""
        return list(self.qualified.values())


def _spelling(label: str) -> str:
    """A column's header as written (a repeated one is labelled ``Name (column N)`` in the frame)."""
    return re.sub(r" \(column \d+\)$", "", label)


# -- applying a profile ----------------------------------------------------------


@dataclass
class MappedExport:
    """An export's rows under the generic column names, plus what the mapping noticed."""

    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    ignored_headers: list[str] = field(default_factory=list)
    #: The generic columns the export really carries; the others are empty because it lacks them.
    carried: tuple[str, ...] = ()
    #: Where the crm_id comes from: "crm_id" (an id column) or "email" (derived from the e-mail).
    key: str = "crm_id"
    #: The export's header the key is read from ("" when a transform makes it).
    key_column: str = ""
    #: The export's own values of its system's import columns (``[crm_import] columns``, by those
    #: names), as it holds them: what crm_import/import_updates.csv writes back for what did not change.
    own: pd.DataFrame | None = None


def _nearest(wanted: str, present: list[str]) -> str | None:
    keys = {header_key(h): h for h in present}
    close = difflib.get_close_matches(header_key(wanted), list(keys), n=1, cutoff=0.75)
    return keys[close[0]] if close else None


_MARKED = byte_table(b"0123456789(=+-@\t\r")
_QUOTE = ord("'")


def _unmark(text: Any) -> Any:
    """Remove a spreadsheet's leading ``'`` text marker before a digit, ``(`` or a formula character.

    Over the Arrow buffers: a row whose first byte is ``'`` and second one of those loses its first byte.
    """
    offsets, data = layout(text)
    starts = offsets[:-1]
    long_enough = (offsets[1:] - starts) >= 2
    if not long_enough.any():
        return text
    padded = np.concatenate((data, np.zeros(2, dtype=np.uint8)))
    strip = long_enough & (padded[starts] == _QUOTE) & _MARKED[padded[starts + 1]]
    if not strip.any():
        return text
    keep = np.ones(len(padded), dtype=bool)
    keep[starts[strip]] = False
    return keep_bytes(text, keep)


def _text(values: pd.Series[Any], missing: tuple[str, ...] = ()) -> Any:
    """The column as Arrow large strings, missing → "" (shares the export's buffers: no copy).

    A spreadsheet's leading ``'`` text marker is removed (before a digit, ``(``
    or a formula character), and whole cells in ``missing`` become "".
    """
    text = _unmark(pc.fill_null(arrow_strings(values), ""))
    if missing:  # a hash look-up per cell; a token with spaces around it is listed as such in the profile
        nothing = pc.is_in(text, value_set=pa.array(list(missing), pa.large_string()))
        if pc.any(nothing).as_py():
            text = pc.if_else(nothing, pa.scalar("", pa.large_string()), text)
    return text


def _filled(array: Any) -> Any:
    return pc.not_equal(pc.utf8_trim_whitespace(array), "")


def _split_lines(array: Any) -> tuple[Any, Any]:
    """(first line, the other lines joined with ", "); values without a line break are only trimmed."""
    broken = pc.or_(pc.match_substring(array, "\n"), pc.match_substring(array, "\r"))
    first = pc.utf8_trim(array, "\n \t")
    rest = pc.fill_null(pa.nulls(len(array), pa.large_string()), "")
    if not pc.any(broken).as_py():
        return first, rest
    subset = pc.filter(array, broken)
    tidy = pc.utf8_trim(pc.replace_substring_regex(subset, r"[ \t]*[\r\n]+[ \t\r\n]*", "\n"), "\n \t")
    # A "\n" appended to every value makes each split have two parts; it is cut off the second.
    newline = pa.scalar("\n", pa.large_string())
    nothing = pa.scalar("", pa.large_string())
    parts = pc.split_pattern(pc.binary_join_element_wise(tidy, newline, nothing), "\n", max_splits=1)
    others = pc.replace_substring(pc.utf8_slice_codeunits(pc.list_element(parts, 1), 0, -1), "\n", ", ")
    return (
        pc.replace_with_mask(first, broken, pc.list_element(parts, 0)),
        pc.replace_with_mask(rest, broken, others),
    )


def _split_fields(array: Any, separator: str, count: int) -> list[Any]:
    """Each value's parts between separators, when there are exactly ``count``; else all in the first."""
    parts = pc.split_pattern(array, separator)
    fits = pc.equal(pc.list_value_length(parts), count)
    empty = pa.scalar("", pa.large_string())
    outputs = [pc.if_else(fits, pc.utf8_trim_whitespace(pc.list_element(parts, 0)), array)]
    for at in range(1, count):
        safe = pc.if_else(fits, parts, pa.scalar([""] * count, parts.type))
        outputs.append(pc.if_else(fits, pc.utf8_trim_whitespace(pc.list_element(safe, at)), empty))
    return outputs


def _key_column(kind: str) -> str:
    """The generic column a key kind (KEY_KINDS) comes from."""
    return "billing_email" if kind == "email" else "crm_id"


def key_columns(profile: Profile) -> tuple[str, ...]:
    """The generic columns a row's key comes from, as alternatives (the first the export carries wins)."""
    return tuple(_key_column(kind) for kind in profile.key)


def fills(profile: Profile, headers: Headers, column: str) -> bool:
    """Whether the export fills the generic ``column``: it has every header of one of its sources."""
    return any(all(headers.has(h) for h in way) for way in profile.sources_of(column))


def _missing(profile: Profile, headers: Headers) -> list[str]:
    """The required generic columns no alternative of which is present, each with the nearest header."""
    missing = []
    key = key_columns(profile)
    if not any(fills(profile, headers, column) for column in key):
        missing.append(_describe(key[0], profile, headers, " or ".join(key)))
    for column in profile.required:
        if not fills(profile, headers, column):
            missing.append(_describe(column, profile, headers, column))
    return missing


def _describe(column: str, profile: Profile, headers: Headers, purpose: str) -> str:
    ways = profile.sources_of(column)
    wanted = next((h for h in ways[0] if not headers.has(h)), column) if ways else column
    nearest = _nearest(wanted, headers.names())
    hint = f'nearest header present: "{nearest}"' if nearest else "no similar header in the file"
    purpose = "" if wanted == column else f"for {purpose}; "
    return f"{wanted} ({purpose}{hint})"


def _run_transform(
    transform: Transform, value: Callable[[str], Any], columns: dict[str, Any], empty: Any
) -> None:
    """One transform of ``profile.transforms``, writing its targets into ``columns``."""
    sources = [value(name) for name in transform.sources]
    if transform.kind == "join":
        result = sources[0]
        separator = pa.scalar(transform.separator, pa.large_string())
        for part in sources[1:]:
            joined = pc.binary_join_element_wise(result, part, separator)
            result = pc.if_else(_filled(result), pc.if_else(_filled(part), joined, result), part)
        outputs = [result]
    elif transform.kind == "split_lines":
        outputs = list(_split_lines(sources[0]))
    elif transform.kind == "split_fields":
        outputs = _split_fields(sources[0], transform.separator, len(transform.targets))
    else:  # coalesce
        result = sources[-1]
        for candidate in reversed(sources[:-1]):
            result = pc.if_else(_filled(candidate), candidate, result)
        outputs = [result]
    if transform.when:
        applies = _filled(value(transform.when[0]))
        for name in transform.when[1:]:
            applies = pc.or_(applies, _filled(value(name)))
        outputs = [
            pc.if_else(applies, output, columns.get(target, empty))
            for output, target in zip(outputs, transform.targets, strict=True)
        ]
    for output, target in zip(outputs, transform.targets, strict=True):
        columns[target] = output


def _look_alikes(profile: Profile, ignored: list[str], headers: Headers) -> list[str]:
    """A warning for each ignored header that looks like one the profile reads but did not find."""
    unread = [h for h in profile.known_headers() if not headers.has(h)]
    warnings = []
    for header in ignored:
        if not header.strip():
            continue
        name = headers.qualified.get(header, header)
        match = difflib.get_close_matches(header_key(name), [header_key(h) for h in unread], n=1, cutoff=0.8)
        if match:
            suggestion = next(h for h in unread if header_key(h) == match[0])
            warnings.append(f"`{header}` was ignored; did you mean `{suggestion}`?")
    return warnings


def apply_profile(profile: Profile, export: pd.DataFrame, *, source: str = "the export") -> MappedExport:
    """Map an export (columns = its headers, all text) onto the generic columns.

    Raises MissingColumnsError when a required column's headers are absent,
    naming them and the nearest header actually present, and InputFileError
    when the profile reads a name two columns share.
    """
    headers = Headers([str(h) for h in export.columns], profile.sections)
    try:
        for name in profile.known_headers():  # a name two columns share is refused first, naming both
            headers.find(name)
        missing = _missing(profile, headers)
        if missing:
            raise MissingColumnsError(f"missing required columns: {', '.join(missing)}")
        return _mapped(profile, export, headers)
    except InputFileError as error:
        raise type(error)(f"{source}: {error}") from None


def _mapped(profile: Profile, export: pd.DataFrame, headers: Headers) -> MappedExport:
    empty = pc.fill_null(pa.nulls(len(export), pa.large_string()), "")
    columns: dict[str, Any] = {}
    used: set[str] = set()
    read_from: dict[str, str] = {}
    texts: dict[str, Any] = {}

    def text(header: str) -> Any:  # each column cleaned once, shared by every reader of it
        if header not in texts:
            texts[header] = _text(export[header], profile.missing_values)
        return texts[header]

    for target, candidates in profile.columns.items():
        header = next((h for h in (headers.find(c) for c in candidates) if h is not None), None)
        if header is not None:
            columns[target] = text(header)
            used.add(header)
            read_from[target] = _spelling(header)
    carried = set(columns)  # generic columns the export really has (mapped, or made from a present header)

    def value(name: str) -> Any:
        if name in CRM_COLUMNS:
            return columns.get(name, empty)
        header = headers.find(name)
        if header is None:
            return empty
        used.add(header)
        return text(header)

    for transform in profile.transforms:
        if any(name in carried if name in CRM_COLUMNS else headers.has(name) for name in transform.sources):
            carried.update(transform.targets)
        _run_transform(transform, value, columns, empty)
    key = "crm_id" if "crm_id" in profile.key and "crm_id" in carried else "email"
    if key == "email":
        columns["crm_id"] = empty  # derived from the normalised e-mail (crmsync.crm.keys)
        carried.add("crm_id")
    frame = pd.DataFrame(
        {
            column: pd.Series(columns.get(column, empty), dtype="str", index=export.index)
            for column in CRM_COLUMNS
        },
        index=export.index,
    )
    ignored = [h for h in export.columns if h not in used]
    return MappedExport(
        frame,
        _look_alikes(profile, ignored, headers),
        ignored,
        tuple(c for c in CRM_COLUMNS if c in carried),
        key,
        read_from.get(_key_column(key), ""),
        _own_columns(profile, export, headers, read_from, text),
    )


def _own_columns(
    profile: Profile,
    export: pd.DataFrame,
    headers: Headers,
    read_from: dict[str, str],
    text: Callable[[str], Any],
) -> pd.DataFrame | None:
    """The import columns the export carries, as it holds them (the text marker and the profile's
    null words removed): under the import's own name, else the header the profile read for the same
    generic column (Shopify's older layout has ``Address1`` for the import's ``Default Address Address1``)."""
    if profile.crm_import is None:
        return None
    labels = {_spelling(label): label for label in export.columns}
    own: dict[str, Any] = {}
    for name in dict.fromkeys((profile.crm_import.match, *profile.crm_import.columns)):
        try:
            header = headers.find(name)
        except InputFileError:  # two columns share the name: neither is this record's for sure
            continue
        if header is None:
            target = next(
                (t for t, c in profile.columns.items() if header_key(name) in map(header_key, c)), ""
            )
            header = labels.get(read_from.get(target, ""))
        if header is not None:
            own[name] = text(header)
    return pd.DataFrame({name: pd.Series(v, dtype="str", index=export.index) for name, v in own.items()})
