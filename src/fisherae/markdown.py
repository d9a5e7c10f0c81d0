"""Markdown tables of results (Table 1, the claims), as GitHub renders them."""

from __future__ import annotations

import pandas as pd


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a GitHub-flavoured Markdown table (cells' '|' escaped)."""
    def cells(values) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"
    return "\n".join([cells(table.columns), cells(["---"] * len(table.columns))]
                     + [cells(row) for row in table.itertuples(index=False)])
