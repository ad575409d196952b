"""Tables on stdout: aligned by Rich on a terminal, tab-separated lines in a pipe.

Cells are stored or model-controlled text: control sequences are stripped and whitespace runs
(newlines included) become one space, so a row stays one line in either form.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from reflectchat.core.reply.sanitize import strip_controls


@dataclass(frozen=True)
class Column:
    name: str
    wrap: bool = False  # may take several lines on a terminal (the rest stay on one)
    overflow: Literal["ellipsis", "fold"] = "ellipsis"  # what a cell too wide for it does
    right: bool = False  # right-aligned (sizes)


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    row_style: Callable[[list[str]], str | None] | None = None,
) -> None:
    """Print `rows` under `columns`; `row_style` may style a whole row on a terminal."""
    cleaned = [[" ".join(strip_controls(cell).split()) for cell in row] for row in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for column in columns:
            table.add_column(
                column.name,
                overflow=column.overflow,
                no_wrap=not column.wrap,
                justify="right" if column.right else "left",
            )
        for row in cleaned:
            # plain strings; markup is off on the console below
            table.add_row(*row, style=row_style(row) if row_style else None)
        Console(markup=False, highlight=False, emoji=False).print(table)
        return
    print("\t".join(column.name for column in columns))
    for row in cleaned:
        print("\t".join(row))
