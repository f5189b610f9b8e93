"""Result rows as files people open: CSV that a spreadsheet shows and never runs.

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and, in some, a tab or a carriage return) as a
formula: an image named `=HYPERLINK(...).png` or a prompt starting with `-` would run on the reader's machine
(CSV injection). Every CSV this package writes (the page's download, `imagereward score --format csv`) goes
through `write_csv`, which makes such text cells inert the way OWASP recommends: a leading single quote, which
spreadsheets show as text. Numbers are written as they are (a negative score is a number, not a formula).
"""

from __future__ import annotations

import csv
from typing import Any, Iterable, Mapping, Sequence, TextIO

# What a cell may not start with (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: Any) -> Any:
    """A cell as a spreadsheet must read it: text that would start a formula gets a leading `'`; any other
    value is returned as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(
    out: TextIO, fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]], lineterminator: str = "\r\n"
) -> None:
    """Writes a header and `rows` (missing fields empty) as CSV, every text cell made `inert`."""
    writer = csv.writer(out, lineterminator=lineterminator)
    writer.writerow([inert(name) for name in fieldnames])
    for row in rows:
        writer.writerow([inert(row.get(name)) if row.get(name) is not None else "" for name in fieldnames])
