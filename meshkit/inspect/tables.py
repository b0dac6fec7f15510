"""Text tables that look exactly like istioctl's (Go `text/tabwriter`, space padded).

istioctl writes every row as tab-separated cells through `tabwriter.NewWriter(out, 0, 8, pad,
' ', 0)`: each column is as wide as its widest cell plus `pad` spaces, and the last cell of a
line is written as is. `pad` is 1 for `proxy-config listener` and 5 for the other tables; the
table functions store it in `df.attrs["padding"]` so `render` needs nothing else.

    >>> df = pd.DataFrame([["a", "b"]], columns=["X", "Y"])
    >>> df.attrs["padding"] = 5
    >>> print(render(df))
    X     Y
    a     b
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

__all__ = ["istioctl_table", "render"]


def istioctl_table(rows: Sequence[Sequence[str]], columns: Sequence[str], padding: int) -> pd.DataFrame:
    """A DataFrame of string cells that remembers the padding istioctl prints it with."""
    table = pd.DataFrame([list(row) for row in rows], columns=list(columns), dtype=object)
    table.attrs["padding"] = padding
    return table


def render(df: pd.DataFrame, padding: int | None = None) -> str:
    """The table as istioctl prints it, header first, without a trailing newline.

    `padding` defaults to `df.attrs["padding"]` (5 if unset). Cell widths count characters.
    A table's `df.attrs["note"]` (what its cells cannot say) is printed under it, after a blank line.
    """
    pad = df.attrs.get("padding", 5) if padding is None else padding
    lines = [list(map(str, df.columns))]
    lines += [["" if cell is None else str(cell) for cell in row] for row in df.itertuples(index=False)]
    widths = [max(len(line[i]) for line in lines) + pad for i in range(len(df.columns) - 1)]
    text = "\n".join(
        "".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)) + line[-1] for line in lines
    )
    return f"{text}\n\n{df.attrs['note']}" if df.attrs.get("note") else text
