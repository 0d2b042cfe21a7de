"""Candidate-gene lists as variant pipelines export them.

Accepted: plain text (one symbol per line, or separated by commas, tabs or spaces; `#`
comments), or a table with a header whose gene column is named like the usual exports
(`gene`, `symbol`, `gene_symbol`, `Gene.refGene`, `SYMBOL`, `GENE`, Exomiser's `GENE_SYMBOL`).
Symbols are upper-cased and de-duplicated.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd

from matcher.errors import Bone2GeneError

GENE_COLUMNS = ("gene", "symbol", "gene_symbol", "gene.refgene", "genes", "hgnc_symbol")
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.-]{0,19}$")


class GeneListError(Bone2GeneError, ValueError):
    title = "Unreadable gene list"


def _from_table(text: str) -> list[str] | None:
    first = next((line for line in text.splitlines() if line.strip() and not line.startswith("##")), "")
    separator = "\t" if "\t" in first else ("," if "," in first else None)
    if separator is None:
        return None
    columns = [c.strip().lstrip("#").lower() for c in first.split(separator)]
    column = next((i for i, c in enumerate(columns) if c in GENE_COLUMNS), None)
    if column is None:
        return None
    table = pd.read_csv(io.StringIO(text), sep=separator, comment=None, dtype=str, skip_blank_lines=True, header=0)
    values = table.iloc[:, column].dropna().astype(str)
    return [g for cell in values for g in re.split(r"[;,|]", cell)]  # annotators join several genes per variant


def parse_gene_list(text: str) -> list[str]:
    """Symbols from a gene list's text (see the module docstring); unreadable tokens are errors."""
    genes = _from_table(text)
    if genes is None:
        lines = [line.split("#", 1)[0] for line in text.splitlines()]
        genes = [g for line in lines for g in re.split(r"[\s,;]+", line) if g]
    cleaned = sorted({g.strip().upper() for g in genes if g.strip() and g.strip() not in (".", "-")})
    bad = [g for g in cleaned if not _SYMBOL.fullmatch(g)]
    if bad:
        raise GeneListError(f"not gene symbols: {', '.join(bad[:5])}; give one HGNC symbol per line, or a table with a 'gene' column")
    return cleaned


def read_gene_list(path: Path) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise GeneListError(f"cannot read the gene list {path}: {exc}") from None
    return parse_gene_list(text)
