"""The project's one CSV writer: tables a person opens in a spreadsheet.

A file or folder name that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula
to Excel and LibreOffice. Every text cell written here that begins so gets a leading `'` (OWASP's
"CSV injection" advice), which a spreadsheet shows as text and never runs. The exact names stay
where scripts read them: JSON / JSON Lines (`--json`) and plain path lists (`dedup --paths`).

    write_csv(groups, "groups.csv")        # atomically, to a file
    write_csv(groups, sys.stdout)          # to an open text stream
    csv_text(removals)                     # the text itself (a download)
    write_row = row_writer(f)              # row by row, for a table streamed in blocks
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from msfkit.models.files import atomic_write

if TYPE_CHECKING:
    import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value`, with a leading `'` when it is text a spreadsheet would run; other values as they are."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def safe_table(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` whose text cells and column names are `safe_cell`s (numbers stay numbers)."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype  # loads pandas (loaded: `df` is one)

    out = df.rename(columns=lambda c: safe_cell(str(c)))
    for column in out.columns:
        if not (is_numeric_dtype(out[column]) or is_bool_dtype(out[column])):  # object, str, category
            out[column] = out[column].map(safe_cell)
    return out


def csv_text(df: pd.DataFrame) -> str:
    """The CSV text of `df` (header, no index), its cells neutralised."""
    buf = io.StringIO()
    write_csv(df, buf)
    return buf.getvalue()


def write_csv(df: pd.DataFrame, out: str | os.PathLike | IO[str]) -> Path | None:
    """Write `df` as CSV (header, no index, neutralised cells) to the stream `out`, or to the file
    `out` under a temporary name renamed into place (returned)."""
    table = safe_table(df)
    if not isinstance(out, (str, os.PathLike)):
        table.to_csv(out, index=False, lineterminator="\n")
        return None
    return atomic_write(out, lambda tmp: table.to_csv(tmp, index=False, lineterminator="\n"))


def row_writer(f: IO[str]) -> Callable[[Sequence[Any]], None]:
    """A function writing one row of cells to the open text stream `f` (quoted as needed, cells
    neutralised, numbers as Python writes them): for writers that stream a table too big to hold."""
    writer = csv.writer(f, lineterminator="\n")
    return lambda cells: writer.writerow([safe_cell(c) for c in cells])
