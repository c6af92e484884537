"""Mapping profiles: how one CRM's export headers become crmsync's generic columns.

A profile is a TOML file in ``schemas/profiles/`` (``--profile NAME``) or
anywhere else (``--profile path/to/file.toml``)::

    description = "what export this reads"
    required = ["crm_id", "contact_name", …]     # generic columns the export must provide

    [columns]                                    # generic column = export header
    crm_id = "Record ID"
    business_name = ["Company Name", "Company"]  # several accepted headers: the first present wins

    [[transforms]]                               # run in order, after [columns]
    kind = "join"                                # join | split_lines | coalesce
    from = ["First Name", "Last Name"]
    to = "contact_name"
    separator = " "                              # join only (default " ")
    when = ["billing_city", …]                   # optional: only on rows where one of these is filled in

In ``from`` and ``when``, a generic column name means that (mapped) column;
any other name is a header of the export. Header matching ignores case,
surrounding spaces, and ``_``/space/``-`` inside names. Generic columns that a
profile does not provide are empty.

* ``join``: the non-empty sources joined with ``separator``;
* ``split_lines``: a multi-line value (``"12 Main St\\nSuite 4"``): its first
  line goes to ``to[0]``, the other lines to ``to[1]`` joined with ``", "``;
* ``coalesce``: the first non-empty source.

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

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crmsync.errors import MissingColumnsError, UsageError
from crmsync.schemas.crm import CRM_COLUMNS

__all__ = [
    "PROFILES_DIR",
    "MappedExport",
    "Profile",
    "Transform",
    "apply_profile",
    "available_profiles",
    "header_key",
    "load_profile",
]

PROFILES_DIR = Path(__file__).resolve().parent.parent / "schemas" / "profiles"
TRANSFORM_KINDS = ("join", "split_lines", "coalesce")
_SEPARATORS = re.compile(r"[\s_\-\u00a0\ufeff\u200b]+")


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
class Profile:
    name: str
    description: str
    columns: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    transforms: tuple[Transform, ...] = ()

    def sources_of(self, column: str) -> list[tuple[str, ...]]:
        """The export headers a generic column comes from: each tuple is one alternative set of headers
        that must ALL be present (a join needs every part), and one tuple per way the column is filled."""
        ways: list[tuple[str, ...]] = []
        if column in self.columns:
            ways.extend((header,) for header in self.columns[column])
        for transform in self.transforms:
            if column in transform.targets:
                headers = tuple(s for s in transform.sources if s not in CRM_COLUMNS)
                if headers:
                    ways.append(headers)
                for generic in (s for s in transform.sources if s in CRM_COLUMNS):
                    ways.extend(self.sources_of(generic))
        return ways

    def known_headers(self) -> list[str]:
        """Every export header this profile reads."""
        names = [header for headers in self.columns.values() for header in headers]
        for transform in self.transforms:
            names.extend(s for s in (*transform.sources, *transform.when) if s not in CRM_COLUMNS)
        return list(dict.fromkeys(names))


def available_profiles() -> list[str]:
    return sorted(path.stem for path in PROFILES_DIR.glob("*.toml"))


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


def parse_profile(name: str, document: dict[str, Any]) -> Profile:
    """Check a profile's TOML document and build the :class:`Profile` (UsageError names what is wrong)."""
    where = f"profile {name!r}"
    unknown = set(document) - {"description", "required", "columns", "transforms"}
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    columns_table = document.get("columns", {})
    if not isinstance(columns_table, dict):
        raise UsageError(f"{where}: [columns] must be a table of generic column = header")
    columns = {
        _generic(target, f"{where} [columns]"): _names(headers, f"{where} [columns] {target}")
        for target, headers in columns_table.items()
    }
    transforms = []
    for number, spec in enumerate(document.get("transforms", []), start=1):
        at = f"{where} transform #{number}"
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
        if kind != "split_lines" and len(targets) != 1:
            raise UsageError(f"{at}: {kind} has exactly one target")
        separator = spec.get("separator", " ")
        if not isinstance(separator, str):
            raise UsageError(f"{at}: separator must be text")
        when = _names(spec["when"], f"{at} when") if "when" in spec else ()
        transforms.append(Transform(kind, sources, targets, separator, when))
    required_list = document.get("required", [])
    if not isinstance(required_list, list):
        raise UsageError(f"{where}: required must be a list of generic columns")
    required = tuple(_generic(str(r), f"{where} required") for r in required_list)
    profile = Profile(name, str(document.get("description", "")), columns, required, tuple(transforms))
    for column in required:
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
            f"unknown profile {name_or_path!r}: use one of {known}, or the path of a .toml profile"
        )
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"profile {path}: not valid TOML ({error})") from None
    return parse_profile(path.stem, document)


# -- applying a profile ----------------------------------------------------------


@dataclass
class MappedExport:
    """An export's rows under the generic column names, plus what the mapping noticed."""

    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    ignored_headers: list[str] = field(default_factory=list)
    #: The generic columns the export really carries; the others are empty because it lacks them.
    carried: tuple[str, ...] = ()


def _nearest(wanted: str, present: list[str]) -> str | None:
    keys = {header_key(h): h for h in present}
    close = difflib.get_close_matches(header_key(wanted), list(keys), n=1, cutoff=0.6)
    return keys[close[0]] if close else None


def _text(values: pd.Series[Any]) -> Any:
    """The column as Arrow large strings, missing → "" (shares the export's buffers: no copy)."""
    array: Any = values.astype("str").array
    return pc.fill_null(array.__arrow_array__().cast(pa.large_string()), "")


def _filled(array: Any) -> Any:
    return pc.not_equal(pc.utf8_trim_whitespace(array), "")


def _split_lines(array: Any) -> tuple[Any, Any]:
    tidy = pc.utf8_trim(pc.replace_substring_regex(array, r"[ \t]*[\r\n]+[ \t\r\n]*", "\n"), "\n \t")
    # A "\n" appended to every value makes each split have two parts; it is cut off the second.
    newline = pa.scalar("\n", pa.large_string())
    nothing = pa.scalar("", pa.large_string())
    parts = pc.split_pattern(pc.binary_join_element_wise(tidy, newline, nothing), "\n", max_splits=1)
    rest = pc.utf8_slice_codeunits(pc.list_element(parts, 1), 0, -1)
    return pc.list_element(parts, 0), pc.replace_substring(rest, "\n", ", ")


def _missing(profile: Profile, headers: list[str], find: Callable[[str], str | None]) -> list[str]:
    """The required generic columns no alternative of which is present, each with the nearest header."""
    missing = []
    for column in profile.required:
        ways = profile.sources_of(column)
        if any(all(find(h) is not None for h in way) for way in ways):
            continue
        wanted = next(h for h in ways[0] if find(h) is None)
        nearest = _nearest(wanted, [h for h in headers if h])
        hint = f'nearest header present: "{nearest}"' if nearest else "no similar header in the file"
        purpose = "" if wanted == column else f"for {column}; "
        missing.append(f"{wanted} ({purpose}{hint})")
    return missing


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


def _look_alikes(profile: Profile, ignored: list[str], find: Callable[[str], str | None]) -> list[str]:
    """A warning for each ignored header that looks like one the profile reads but did not find."""
    unread = [h for h in profile.known_headers() if find(h) is None]
    warnings = []
    for header in ignored:
        if not header.strip():
            continue
        match = difflib.get_close_matches(
            header_key(header), [header_key(h) for h in unread], n=1, cutoff=0.8
        )
        if match:
            suggestion = next(h for h in unread if header_key(h) == match[0])
            warnings.append(f"`{header}` was ignored; did you mean `{suggestion}`?")
    return warnings


def apply_profile(profile: Profile, export: pd.DataFrame, *, source: str = "the export") -> MappedExport:
    """Map an export (columns = its headers, all text) onto the generic columns.

    Raises MissingColumnsError when a required column's headers are absent,
    naming them and the nearest header actually present.
    """
    headers = [str(h) for h in export.columns]
    by_key = {header_key(h): h for h in headers if header_key(h)}

    def find(header: str) -> str | None:
        return by_key.get(header_key(header))

    missing = _missing(profile, headers, find)
    if missing:
        raise MissingColumnsError(f"{source}: missing required columns: {', '.join(missing)}")
    empty = pc.fill_null(pa.nulls(len(export), pa.large_string()), "")
    columns: dict[str, Any] = {}
    used: set[str] = set()
    for target, candidates in profile.columns.items():
        header = next((find(c) for c in candidates if find(c) is not None), None)
        if header is not None:
            columns[target] = _text(export[header])
            used.add(header)
    carried = set(columns)  # generic columns the export really has (mapped, or made from a present header)

    def value(name: str) -> Any:
        if name in CRM_COLUMNS:
            return columns.get(name, empty)
        header = find(name)
        if header is None:
            return empty
        used.add(header)
        return _text(export[header])

    for transform in profile.transforms:
        if any(
            name in carried if name in CRM_COLUMNS else find(name) is not None for name in transform.sources
        ):
            carried.update(transform.targets)
        _run_transform(transform, value, columns, empty)
    frame = pd.DataFrame(
        {
            column: pd.Series(columns.get(column, empty), dtype="str", index=export.index)
            for column in CRM_COLUMNS
        },
        index=export.index,
    )
    ignored = [h for h in headers if h not in used]
    return MappedExport(
        frame, _look_alikes(profile, ignored, find), ignored, tuple(c for c in CRM_COLUMNS if c in carried)
    )
