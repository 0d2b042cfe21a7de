"""The house rules a newcomer relies on: a function fits on a screen, a class has one job.

No function over 80 lines and no class over 250 lines in the packages (scripts are exempt:
each is one reproducible run read top to bottom).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("matcher", "index", "training", "api")
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 250


def _too_long() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.end_lineno - node.lineno + 1 > limit:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    return found


def test_no_function_or_class_outgrows_its_limit() -> None:
    assert not _too_long(), "split these:\n" + "\n".join(_too_long())
