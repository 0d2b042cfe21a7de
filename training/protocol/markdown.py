"""Markdown tables for reports and benchmarks: one writer, one way of printing a figure."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd


def table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table as lines: the header, its rule, one line per row."""
    return [
        "| " + " | ".join(map(str, header)) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(map(str, row)) + " |" for row in rows),
    ]


def frame_table(frame: pd.DataFrame) -> list[str]:
    """A data frame's columns and rows as a Markdown table (the index is left out)."""
    return table(list(frame.columns), [list(row) for row in frame.itertuples(index=False)])


def percent(values: Sequence[float]) -> str:
    """Shares as a percentage: the mean, and ± the SD where there are several (draws)."""
    if not len(values):
        return "-"
    mean, sd = 100 * float(np.mean(values)), 100 * float(np.std(values))
    return f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ± {sd:.1f}"


def number(value: float | None, digits: int = 3) -> str:
    """A figure with `digits` decimals; "-" where there is none."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
