"""Importing credit lines from an existing platform (CSV), for operators migrating.

Columns `id_number,name,phone,bank_code,limit_fen` with a header (line 1), in
UTF-8 (with or without a byte-order mark) or in GB18030 — the superset of GBK,
what Excel writes in Chinese locales. Anything else is refused as a whole.
Good rows are imported; a resident who already holds a line that is not
closed is skipped and counted; every bad row is reported by its line number
and reason and not imported. Re-running the same file imports nothing twice.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.core.db import unit_of_work
from hub.core.personal_data import Vault, normalize_id_number
from hub.medical.lines import AlreadyEnrolled, open_line
from models.core.schemas import MAX_FEN
from models.core.tables import Partner

COLUMNS = ("id_number", "name", "phone", "bank_code", "limit_fen")
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,19}$")
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: `isdigit` also takes "²"
BATCH = 500


# Bytes that never occur in UTF-8 or GB18030 text (every byte of a multibyte
# character in either is 0x30 or above): their presence means binary data.
_NOT_TEXT = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
_CHUNK = 1 << 20


class BadHeader(ValueError):
    """The file does not start with the expected header."""


class NotText(ValueError):
    """The file is not text in an encoding the import reads."""


def encoding_of(path: Path) -> str:
    """The encoding to read `path` with: "utf-8-sig" for UTF-8 with or without a
    byte-order mark, else "gb18030" (GBK's superset). Raises NotText for binary
    data and for text in neither encoding. Reads the file in chunks, once or twice."""
    with path.open("rb") as handle:
        start = handle.read(4)
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise NotText(f"{path.name} is UTF-16 text, not CSV: save it as CSV (UTF-8)")
    for encoding in ("utf-8-sig", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    if _NOT_TEXT.search(chunk):
                        raise NotText(
                            f"{path.name} is not a CSV text file (it holds binary data); "
                            "save the sheet as CSV"
                        )
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding
    raise NotText(f"{path.name} is neither UTF-8 nor GBK/GB18030 text: save it as CSV (UTF-8)")


@dataclass(frozen=True)
class LineRow:
    line_no: int
    id_number: str
    name: str
    phone: str
    bank_code: str
    limit_fen: int


@dataclass
class ImportReport:
    imported: int = 0
    skipped: int = 0
    bad: list[str] = field(default_factory=list)  # "line N: reason"

    @property
    def rows(self) -> int:
        return self.imported + self.skipped + len(self.bad)


def read_rows(handle: TextIO) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; raises BadHeader for a missing or wrong header."""
    reader = csv.reader(handle)
    header = next(reader, None)
    names = [h.strip() for h in header] if header else []
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise BadHeader(
            f"line 1: the header must name {','.join(COLUMNS)} (missing {','.join(missing)})"
        )
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        yield (
            reader.line_num,
            dict(zip(names, (v.strip() for v in values), strict=False))
            | {"__count__": str(len(values))},
        )


def parse_row(line_no: int, raw: dict[str, str], banks: set[str]) -> LineRow | str:
    """A valid row, or the reason it is bad (never echoing personal data)."""
    if int(raw["__count__"]) != len(COLUMNS):
        return f"expected {len(COLUMNS)} columns, found {raw['__count__']}"
    id_number = normalize_id_number(raw["id_number"])
    if id_number is None:
        return "id_number is not a valid resident identity number"
    if not raw["name"]:
        return "name is empty"
    if not _PHONE.match(raw["phone"]):
        return "phone is not a phone number"
    if raw["bank_code"] not in banks:
        return f"bank_code {raw['bank_code']!r} is not a bank partner"
    limit = raw["limit_fen"]
    if not _DIGITS.fullmatch(limit) or not 1 <= int(limit) <= MAX_FEN:
        return "limit_fen must be a whole number of fen from 1 to 10^12"
    return LineRow(line_no, id_number, raw["name"], raw["phone"], raw["bank_code"], int(limit))


def import_lines(
    engine: Engine,
    vault: Vault,
    rows: Iterable[tuple[int, dict[str, str]]],
    now: Callable[[], datetime],
    progress: Callable[[int], None] = lambda n: None,
) -> ImportReport:
    report = ImportReport()
    with unit_of_work(engine, write=False) as session:
        banks = {
            p.code: p.id for p in session.scalars(select(Partner).where(Partner.kind == "bank"))
        }
    batch: list[LineRow] = []
    for line_no, raw in rows:
        parsed = parse_row(line_no, raw, set(banks))
        if isinstance(parsed, str):
            report.bad.append(f"line {line_no}: {parsed}")
            progress(1)
        else:
            batch.append(parsed)
        if len(batch) >= BATCH:
            _import_batch(engine, vault, batch, banks, now, report)
            progress(len(batch))
            batch = []
    if batch:
        _import_batch(engine, vault, batch, banks, now, report)
        progress(len(batch))
    return report


def _import_batch(
    engine: Engine,
    vault: Vault,
    batch: list[LineRow],
    banks: dict[str, str],
    now: Callable[[], datetime],
    report: ImportReport,
) -> None:
    """One transaction a batch; if a racing writer got in first, one a row."""
    try:
        with unit_of_work(engine) as session:
            counts = [_import_row(session, vault, row, banks, now()) for row in batch]
    except IntegrityError:
        counts = []
        for row in batch:
            try:
                with unit_of_work(engine) as session:
                    counts.append(_import_row(session, vault, row, banks, now()))
            except IntegrityError:
                counts.append(False)
    report.imported += sum(counts)
    report.skipped += len(counts) - sum(counts)


def _import_row(
    session: Session, vault: Vault, row: LineRow, banks: dict[str, str], now: datetime
) -> bool:
    try:
        open_line(
            session,
            vault,
            id_number=row.id_number,
            name=row.name,
            phone=row.phone,
            bank_id=banks[row.bank_code],
            limit_fen=row.limit_fen,
            source="import",
            now=now,
        )
    except AlreadyEnrolled:
        return False
    return True
