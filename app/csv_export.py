"""CSV for people who open it in a spreadsheet: every export writes its rows through here.

A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is read by Excel,
LibreOffice and Google Sheets as a formula, so a party named `=HYPERLINK("http://x","y")`
would run in the regulator's or the bank's spreadsheet (CSV injection, OWASP). Such text is
prefixed with a single quote, which spreadsheets show as text; every text cell is quoted.

Numbers (amounts in fen) are written bare and never escaped: they are what the bank's
format reads as numbers, a negative one included, and a number cannot hold a formula.
Text that merely looks like a number ("-12") is text, and escaped like any other.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, Protocol

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class SupportsWrite(Protocol):
    def write(self, text: str, /) -> Any: ...


def cell(value: Any) -> Any:
    """A number as it is; anything else as text, escaped when it could start a formula."""
    if isinstance(value, int | float | Decimal):  # bool too: it is written True / False
        return value
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class Writer:
    """csv.writer for exports, to a file opened with newline="" or anything with write():
    each cell through `cell`, text quoted, numbers bare."""

    def __init__(self, out: SupportsWrite) -> None:
        self._writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([cell(value) for value in row])


class _Line:
    """Keeps only the last thing written to it: one row's line."""

    text = ""

    def write(self, text: str) -> int:
        self.text = text
        return len(text)


def lines(rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """Each row (a header is a row) as one CSV line, as it is needed: an export of any
    length is streamed, never built whole in memory."""
    line = _Line()
    out = Writer(line)
    for row in rows:
        out.writerow(row)
        yield line.text
