"""Read a CRM export robustly: CSV file → text frame with lineage.

What it copes with, and how:

* **Encodings.** A byte-order mark decides (UTF-8, UTF-16, UTF-32). Without
  one: UTF-16 is recognised by its pattern of NUL bytes; otherwise the bytes
  must be strict UTF-8, else they are read as cp1252 (Windows Western
  European, what Excel writes), with latin-1 for the five bytes cp1252 leaves
  undefined. The encoding is reported, with ``encoding_guessed`` when no BOM
  or UTF-8 validity proved it.
* **Not a CSV.** Empty files, known binary formats (PNG, JPEG, GIF, PDF, zip /
  .xlsx, .xls, gzip), NUL bytes or control characters and a header without any
  delimiter are fatal :class:`InputFileError`\\ s. Repeated header names are
  kept (labelled ``Name (column N)``): only a profile reading such a name refuses it.
* **Delimiter.** ``,`` ``;`` tab or ``|``: the one that splits the header
  line into the most fields.
* **Lineage.** Each row keeps ``source_line``: the 1-based physical line on
  which its record STARTS (the header is line 1, or later after blank lines).
  Quoted values may span lines; CRLF, CR and LF all end a line; blank lines
  are not rows.
* **Row shape.** A row with more or fewer values than the header keeps its
  place and carries a ``row_problem`` that validation turns into a reject.

Two parsers, one answer. The fast path hands the UTF-8 bytes to Arrow's
multi-threaded CSV reader and derives lineage from what it parsed: a record
spans 1 + (newlines inside its values) lines, counted with numpy over the
Arrow buffers. When the body's newlines add up to exactly that, there is no
blank line and record i starts on ``first line + i + newlines inside the
records before it``. Otherwise a numpy scan places every record (a newline
ends a record when an even number of quote characters precede it: RFC 4180
quotes come in pairs) and must agree with Arrow row by row. Any irregularity —
a row of the wrong width, a stray quote that makes the two disagree, an
unclosed quote — sends the file to the slow path: Python's csv module, line by
line, which reports each irregular row precisely. Both paths return the same
frame for any file the fast path accepts (tests compare them).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from crmsync.crm.fit import ProfileFit, rank_profiles
from crmsync.crm.profiles import Profile, apply_profile, builtin_profiles
from crmsync.errors import InputFileError, MissingColumnsError, NoProfileFitsError
from crmsync.text import layout

log = logging.getLogger("crmsync.crm")

__all__ = ["DELIMITERS", "CrmExport", "RawExport", "choose_profile", "decode", "read_crm", "read_export"]

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive (an .xlsx workbook is one: save it as CSV)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel .xls workbook (save it as CSV)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"
_QUOTE = 34
_NEWLINE = 10


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    """For cp1252's five undefined bytes, take the latin-1 character of the same value."""
    assert isinstance(error, UnicodeDecodeError)
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error("crmsync-latin1", _latin1_fallback)


@dataclass
class RawExport:
    """The export as read: one text column per header, in file order, and each row's lineage."""

    frame: pd.DataFrame  # columns = the header names as written (trimmed), values = text, "" for empty
    source_lines: np.ndarray[Any, np.dtype[np.int64]]
    row_problems: dict[
        int, str
    ]  # row position → what is wrong with its shape (rows of the header's width are absent)
    encoding: str
    encoding_guessed: bool
    delimiter: str
    header_line: int
    parser: str  # "arrow" (fast path) or "csv" (slow path)
    warnings: list[str] = field(default_factory=list)


@dataclass
class CrmExport:
    """An export mapped onto the generic columns: what normalisation and validation take."""

    frame: pd.DataFrame  # CRM_COLUMNS + source_line, source_file, row_problem
    source_file: str
    encoding: str
    encoding_guessed: bool
    delimiter: str
    profile: str
    parser: str
    warnings: list[str]
    ignored_headers: list[str]
    #: The generic columns the file really carries (a column it lacks is empty, and is never synced).
    mapped_columns: tuple[str, ...] = ()
    #: The profile that mapped it (chosen by ``auto``, or given).
    mapping: Profile | None = None
    #: How well the profile's headers fit the export (with the runners-up when ``auto`` chose it).
    profile_fit: ProfileFit | None = None
    #: Where crm_id comes from: "crm_id" (the export's id column) or "email" (derived from the e-mail).
    key: str = "crm_id"
    #: The header the key is read from (the id column, or the e-mail's), as the export spells it.
    key_column: str = ""
    #: The export's own values of its system's import columns (profiles with ``[crm_import]``), by
    #: those names, index as ``frame``'s: what import_updates.csv writes back for what did not change.
    own: pd.DataFrame | None = None


# -- bytes → text ------------------------------------------------------------------


def _utf16_without_bom(data: bytes) -> str | None:
    sample = data[:4096]
    even, odd = sample[0::2], sample[1::2]
    if len(sample) < 4:
        return None
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def _is_utf8(data: bytes) -> bool:
    """Strict UTF-8 validity, checked by Arrow's validator (several times faster than bytes.decode)."""
    if data.isascii():
        return True
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    try:
        pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(data)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def decode(data: bytes, source: str) -> tuple[bytes, str, bool, list[str]]:
    """Detect the encoding; return (UTF-8 bytes with LF line ends, encoding, guessed, warnings)."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            raise InputFileError(f"{source}: this is {kind}, not a CSV file")
    warnings: list[str] = []
    text: str | None = None
    encoding = ""
    guessed = False
    for bom, name in _BOMS:
        if data.startswith(bom):
            encoding = name
            try:
                text = data.decode(name)
            except UnicodeDecodeError as error:
                raise InputFileError(
                    f"{source}: starts with a {name} byte-order mark but byte {error.start} is not {name}"
                ) from None
            text = text.removeprefix("\ufeff")
            break
    if text is None and b"\x00" in data:
        utf16 = _utf16_without_bom(data)
        if utf16 is None:
            raise InputFileError(f"{source}: contains NUL bytes, so it is a binary file, not a CSV export")
        encoding, guessed = utf16, True
        try:
            text = data.decode(utf16)
        except UnicodeDecodeError:
            raise InputFileError(
                f"{source}: contains NUL bytes, so it is a binary file, not a CSV export"
            ) from None
    if text is None:
        if not _is_utf8(data):
            encoding, guessed = "cp1252", True
            text = data.decode("cp1252", errors="crmsync-latin1")
            undefined = sorted({f"0x{b:02X}" for b in data if b in _CP1252_UNDEFINED})
            note = (
                f" (bytes {', '.join(undefined)}, undefined in cp1252, were read as latin-1)"
                if undefined
                else ""
            )
            warnings.append(
                f"the file is not UTF-8; it was read as cp1252 (Windows Western European){note}: "
                "check accented letters in valid.csv, or export as UTF-8"
            )
        else:
            encoding = "utf-8"
    # For strict UTF-8, ``text`` stays None: the bytes are kept as they are, not re-encoded.
    body = text
    sample = (body if body is not None else data[:65536].decode("utf-8", errors="replace"))[:65536]
    controls = len(_CONTROL.findall(sample))
    if controls > max(8, len(sample) // 100):
        raise InputFileError(
            f"{source}: contains {controls} control characters near the start; not a CSV export"
        )
    if body is not None:
        if "\x00" in body:
            raise InputFileError(
                f"{source}: contains NUL characters, so it is a binary file, not a CSV export"
            )
        raw = body.encode("utf-8")
    else:
        raw = data[3:] if data.startswith(codecs.BOM_UTF8) else data
        if b"\x00" in raw:
            raise InputFileError(f"{source}: contains NUL bytes, so it is a binary file, not a CSV export")
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return raw, encoding, guessed, warnings


# -- header ------------------------------------------------------------------------


_SCAN_CHUNK = 8 << 20


def _record_ends(data: bytes | memoryview) -> tuple[Any, Any]:
    """(offsets of the newlines that end a record, offsets of every newline).

    A newline ends a record when an even number of quote characters precede it.
    The scan runs over 8 MB chunks so that its temporaries stay small.
    """
    array = np.frombuffer(data, dtype=np.uint8)
    ends: list[Any] = []
    newlines: list[Any] = []
    quotes_so_far = 0
    for at in range(0, len(array), _SCAN_CHUNK):
        chunk = array[at : at + _SCAN_CHUNK]
        found = np.flatnonzero(chunk == _NEWLINE)
        quotes = np.flatnonzero(chunk == _QUOTE)
        even = ((quotes_so_far + np.searchsorted(quotes, found)) & 1) == 0
        quotes_so_far += len(quotes)
        newlines.append(found + at)
        ends.append(found[even] + at)
    if not newlines:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(ends), np.concatenate(newlines)


def _header(data: bytes, source: str) -> tuple[list[str], str, int, int, int]:
    """(header names, delimiter, the header's line, the body's first line, offset where the body starts)."""
    offset = 0
    line = 1
    while True:  # blank lines before the header are not the header
        end = data.find(b"\n", offset)
        text = data[offset : (end if end >= 0 else len(data))]
        if text.strip(b" \t"):
            break
        if end < 0:
            raise InputFileError(f"{source}: the file is empty (no header line)")
        offset, line = end + 1, line + 1
    window = data[offset : offset + 1_048_576]
    ends, _ = _record_ends(window)
    header_end = int(ends[0]) if len(ends) else len(window)
    header_text = window[:header_end].decode("utf-8")
    best: tuple[int, str, list[str]] = (0, ",", [])
    for delimiter in DELIMITERS:
        try:
            reader = csv.reader(io.StringIO(header_text, newline=""), delimiter=delimiter, strict=False)
            fields = next(reader, [])
        except csv.Error as error:
            raise InputFileError(f"{source}: the header line cannot be read as CSV ({error})") from None
        if len(fields) > best[0]:
            best = (len(fields), delimiter, fields)
    count, delimiter, names = best
    if count < 2:
        shown = header_text[:60] + ("…" if len(header_text) > 60 else "")
        raise InputFileError(
            f'{source}: the first line "{shown}" has no comma, semicolon, tab or | between column names; '
            "not a CSV export"
        )
    names = [name.strip().strip("\ufeff\u200b").strip() for name in names]
    return names, delimiter, line, line + header_text.count("\n") + 1, offset + header_end + 1


def _unique_labels(names: list[str]) -> list[str]:
    """Frame labels: an unnamed column is ``(unnamed column N)``, a repeated name ``Name (column N)``.

    Repeated names are not an error here: only a profile that reads such a name
    refuses it (:class:`crmsync.crm.profiles.Headers`), naming both columns.
    """
    seen: set[str] = set()
    labels = []
    for i, name in enumerate(names, start=1):
        label = (
            name if name and name not in seen else f"{name} (column {i})" if name else f"(unnamed column {i})"
        )
        seen.add(name)
        labels.append(label)
    return labels


# -- fast path: Arrow + numpy lineage ------------------------------------------------


class _Irregular(Exception):
    """The fast path cannot vouch for this file; use the slow path."""


def _newlines_per_row(table: pa.Table) -> Any:
    """How many newlines each parsed row holds inside its values (numpy over the Arrow buffers)."""
    counts = np.zeros(table.num_rows, dtype=np.int64)
    for column in table.columns:
        first_row = 0
        for chunk in column.chunks:
            offsets, data = layout(chunk)
            found = np.flatnonzero(data[offsets[0] :] == _NEWLINE) + offsets[0]
            if len(found):
                rows = np.searchsorted(offsets, found, side="right") - 1
                counts += np.bincount(rows + first_row, minlength=table.num_rows)
            first_row += len(chunk)
    return counts


def _fast(body: memoryview, names: list[str], delimiter: str, first_line: int) -> tuple[pa.Table, Any]:
    """Arrow parses; lineage follows from the newlines inside each row's values.

    Each record spans 1 + (newlines inside its values) lines. When the body's
    newlines add up to exactly that, there is no blank line anywhere and record
    i starts on ``first_line + i + (newlines inside the records before it)``.
    Otherwise (blank lines) a quote-parity scan of the bytes places every record.
    """
    table = _arrow_parse(body, len(names), delimiter)
    inner = _newlines_per_row(table)
    array = np.frombuffer(body, dtype=np.uint8)
    newline_count = sum(
        int(np.count_nonzero(array[at : at + _SCAN_CHUNK] == _NEWLINE))
        for at in range(0, len(array), _SCAN_CHUNK)
    )
    ends_with_newline = len(array) > 0 and array[-1] == _NEWLINE
    expected = table.num_rows + int(inner.sum()) - (0 if ends_with_newline or not table.num_rows else 1)
    if newline_count == expected:
        before = np.concatenate(([0], np.cumsum(inner)[:-1])) if table.num_rows else inner
        lines = first_line + np.arange(table.num_rows, dtype=np.int64) + before
    else:
        ends, newlines = _record_ends(body)
        table, lines = _lineage(body, table, inner, ends, newlines, len(names), delimiter, first_line)
    # Arrow accepts a quote left open at the end of the file (the rest becomes one value);
    # the csv module's strict mode tells, on the last record's text, and the slow path reports it.
    if table.num_rows and _open_quote_at_end(_tail(array, int(inner[-1]) + ends_with_newline + 1), delimiter):
        raise _Irregular("a quote is never closed")
    return table, lines


def _tail(array: Any, newlines: int) -> str:
    """The text after the ``newlines``-th newline from the end (all of it when there are fewer)."""
    window = 1 << 16
    while True:
        start = max(0, len(array) - window)
        found = np.flatnonzero(array[start:] == _NEWLINE)
        if len(found) >= newlines:
            return bytes(array[start + int(found[-newlines]) + 1 :]).decode("utf-8")
        if start == 0:
            return bytes(array).decode("utf-8")
        window *= 4


def _open_quote_at_end(text: str, delimiter: str) -> bool:
    """Whether ``text`` ends inside a quoted value (csv's strict mode: "unexpected end of data")."""
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True):
            pass
    except csv.Error as error:
        return "unexpected end of data" in str(error)
    return False


def _arrow_parse(body: memoryview, width: int, delimiter: str) -> pa.Table:
    strip = " " if delimiter == "\t" else " \t"

    def irregular(row: Any) -> str:
        if row.text is not None and not row.text.strip(strip):
            return "skip"  # a blank line (spaces only): the scan drops it too
        return "error"

    column_names = [f"c{i}" for i in range(width)]
    if not len(body):
        return pa.table({c: pa.array([], pa.large_string()) for c in column_names})
    try:
        return pa_csv.read_csv(
            pa.py_buffer(body),
            read_options=pa_csv.ReadOptions(column_names=column_names, block_size=16 << 20),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=True,
                invalid_row_handler=irregular,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(column_names, pa.large_string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        raise _Irregular(str(error)) from None


def _lineage(
    body: memoryview,
    table: pa.Table,
    inner: Any,
    ends: Any,
    newlines: Any,
    width: int,
    delimiter: str,
    first_line: int,
) -> tuple[pa.Table, Any]:
    """Each record's first line, after checking that the scan and Arrow agree on the rows."""
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [len(body)]))
    keep = stops > starts
    # A line too short to hold the header's delimiters may be blank (spaces only); so may a
    # short one. A longer line of spaces makes Arrow and the scan disagree: the slow path takes it.
    short = np.flatnonzero(keep & (stops - starts < max(width - 1, 17)))
    strip = b" " if delimiter == "\t" else b" \t"
    for index in short:
        if not bytes(body[starts[index] : stops[index]]).strip(strip):
            keep[index] = False
    starts, stops = starts[keep], stops[keep]
    lines = first_line + np.searchsorted(newlines, starts).astype(np.int64)
    inner_newlines = np.searchsorted(newlines, stops) - np.searchsorted(newlines, starts)
    if table.num_rows != len(starts):
        raise _Irregular(f"{table.num_rows} rows parsed, {len(starts)} records scanned")
    if not np.array_equal(inner, inner_newlines):
        raise _Irregular("newlines inside values do not match the scan")
    return table, lines


# -- slow path: the csv module, line by line -------------------------------------------


class _Lines:
    """Feeds csv.reader one physical line at a time (LF only) and keeps the lines of the current record."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._at = 0
        self.count = 0
        self.record: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._at >= len(self._text):
            raise StopIteration
        end = self._text.find("\n", self._at)
        end = len(self._text) if end < 0 else end + 1
        line = self._text[self._at : end]
        self._at = end
        self.count += 1
        self.record.append(line)
        return line


def _slow(
    body: memoryview, names: list[str], delimiter: str, first_line: int
) -> tuple[pa.Table, Any, dict[int, str]]:
    width = len(names)
    text = str(body, "utf-8")
    lines = _Lines(text)
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    strip = " " if delimiter == "\t" else " \t"
    columns: list[list[str]] = [[] for _ in range(width)]
    chunks: list[list[Any]] = [[] for _ in range(width)]
    starts: list[int] = []
    problems: dict[int, str] = {}
    previous = 0
    total = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))
    try:
        for row in reader:
            record, lines.record = lines.record, []
            start, previous = previous + 1, lines.count
            if len(record) == 1 and (
                not row or (len(row) == 1 and width > 1 and not record[0].strip(strip + "\n"))
            ):
                continue
            starts.append(first_line + start - 1)
            problem = ""
            if lines.count == total and _open_quote_at_end("".join(record), delimiter):
                problem = "a quote opened on this line is never closed, so the rest of the file was read as one value"
                row = (row + [""] * width)[:width]
            elif len(row) != width:
                problem = (
                    f"this line has {len(row)} values but the header has {width} columns; "
                    "a delimiter or quote is probably missing or extra"
                )
                row = (row + [""] * width)[:width]
            if problem:
                problems[len(starts) - 1] = problem
            for i, value in enumerate(row):
                columns[i].append(value)
            if len(columns[0]) >= 50_000:
                for i in range(width):
                    chunks[i].append(pa.array(columns[i], pa.large_string()))
                    columns[i] = []
    finally:
        csv.field_size_limit(limit)
    for i in range(width):
        chunks[i].append(pa.array(columns[i], pa.large_string()))
    table = pa.table({f"c{i}": pa.chunked_array(chunks[i], pa.large_string()) for i in range(width)})
    return table.combine_chunks(), np.asarray(starts, dtype=np.int64), problems


# -- entry points ------------------------------------------------------------------------


def read_export(path: Path, *, force_slow: bool = False) -> RawExport:
    """Read a CSV export as text columns named by its header, with each row's first line."""
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"{source}: is a folder, not a CSV file") from None
    except OSError as error:
        raise InputFileError(f"{source}: cannot be read ({error.strerror})") from None
    if not data or (len(data) < 4096 and not data.strip()):
        raise InputFileError(f"{source}: the file is empty")
    raw, encoding, guessed, warnings = decode(data, source)
    del data
    names, delimiter, header_line, first_line, body_start = _header(raw, source)
    body = memoryview(raw)[body_start:]  # a view: no copy of a large file
    parser = "arrow"
    problems: dict[int, str] = {}
    try:
        if force_slow:
            raise _Irregular("slow path requested")
        table, lines = _fast(body, names, delimiter, first_line)
    except _Irregular:
        parser = "csv"
        table, lines, problems = _slow(body, names, delimiter, first_line)
    del body, raw  # Arrow copied the values out: free the file's bytes before mapping
    labels = _unique_labels(names)
    frame = table.rename_columns(labels).to_pandas(
        types_mapper={pa.large_string(): pd.StringDtype("pyarrow", na_value=np.nan)}.get
    )
    if header_line > 1:
        warnings.append(f"{header_line - 1} blank line(s) before the header were skipped")
    return RawExport(frame, lines, problems, encoding, guessed, delimiter, header_line, parser, warnings)


def choose_profile(names: list[str], source: str) -> tuple[Profile, ProfileFit]:
    """``--profile auto``: the built-in profile that fits the headers best, or NoProfileFitsError."""
    profiles = builtin_profiles()
    ranked = rank_profiles(names, profiles)
    best = ranked[0]
    if not best.fits:
        closest = "; ".join(f.describe() for f in ranked[:3])
        raise NoProfileFitsError(
            f"{source}: no built-in profile fits this export's headers; the closest: {closest}"
        )
    chosen = next(p for p in profiles if p.name == best.profile)
    runners_up = tuple(f for f in ranked[1:4] if f.read)
    return chosen, ProfileFit(**{**best.__dict__, "candidates": runners_up})


def _wrong_profile(error: MissingColumnsError, profile: Profile, names: list[str]) -> MissingColumnsError:
    """The error of a profile that does not fit, naming the built-in profile that would."""
    fitting = [f for f in rank_profiles(names) if f.fits and f.profile != profile.name]
    if not fitting:
        return error
    return MissingColumnsError(
        f"{error}. This looks like a {fitting[0].system} export: the profile {fitting[0].describe()} fits it"
    )


def _better_fit(fit: ProfileFit, names: list[str]) -> list[str]:
    """A warning when a built-in profile reads clearly more of the export's headers than the given one."""
    best = next((f for f in rank_profiles(names) if f.fits), None)
    if best is None or best.profile == fit.profile or best.read < fit.read + 3:
        return []
    return [
        f"this looks like a {best.system} export: the profile {best.profile} reads {best.read} of its "
        f"{best.headers} headers, {fit.profile} only {fit.read}"
    ]


def read_crm(path: Path, profile: Profile | None) -> CrmExport:
    """Read an export and map it onto the generic columns with ``profile`` (None: the one that fits best)."""
    raw = read_export(path)
    names = [str(c) for c in raw.frame.columns]
    if profile is None:
        profile, fit = choose_profile(names, str(path))
        log.info("profile %s chosen for %s: the best fit, %s", fit.profile, path, fit.describe())
    else:
        fit = rank_profiles(names, [profile])[0]
        raw.warnings.extend(_better_fit(fit, names))
    try:
        mapped = apply_profile(profile, raw.frame, source=str(path))
    except MissingColumnsError as error:
        raise _wrong_profile(error, profile, names) from None
    frame = mapped.frame
    frame["source_line"] = raw.source_lines
    # One category and int8 codes: a million rows cost 1 MB, not a million strings.
    codes = np.zeros(len(frame), dtype=np.int8)
    frame["source_file"] = pd.Categorical.from_codes(codes, categories=[str(path)])  # type: ignore[call-overload]
    problems = pa.compute.fill_null(pa.nulls(len(frame), pa.large_string()), "")
    if raw.row_problems:
        mask = np.zeros(len(frame), dtype=bool)
        mask[list(raw.row_problems)] = True
        texts = pa.array([raw.row_problems[p] for p in sorted(raw.row_problems)], pa.large_string())
        problems = pa.compute.replace_with_mask(problems, pa.array(mask), texts)
    frame["row_problem"] = pd.Series(problems, index=frame.index, dtype="str")
    if len(frame) == 0:
        raw.warnings.append("the export has a header but no rows")
    return CrmExport(
        frame=frame,
        source_file=str(path),
        encoding=raw.encoding,
        encoding_guessed=raw.encoding_guessed,
        delimiter=raw.delimiter,
        profile=profile.name,
        parser=raw.parser,
        warnings=raw.warnings + mapped.warnings,
        ignored_headers=mapped.ignored_headers,
        mapped_columns=mapped.carried,
        mapping=profile,
        profile_fit=fit,
        key=mapped.key,
        key_column=mapped.key_column,
        own=mapped.own,
    )
