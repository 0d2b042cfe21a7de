"""The house's shape: every module of the product is used by the product or its tests, the
product never reaches into `experiments/` or `scripts/`, and dependencies point down."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("matcher", "index", "training", "api")
ENTRY_POINTS = ("api.cli", "api.service")  # `bone2gene` and the service's app
# what each package may import of the others (DESIGN.md section 1: nothing imports api)
ALLOWED = {
    "matcher": {"matcher"},
    "index": {"index", "matcher"},
    "training": {"training", "matcher", "index"},
    "api": {"api", "matcher", "index", "training"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(folder: str) -> dict[str, Path]:
    return {_module_name(p): p for p in (REPO / folder).rglob("*.py")}


PRODUCT = {name: path for package in PACKAGES for name, path in _modules(package).items()}
TESTS = _modules("tests")


def _imported(name: str, path: Path) -> set[str]:
    """Every module `path` names in an import statement, anywhere in it (lazy imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _reached(roots: set[str]) -> set[str]:
    """Product modules reached from `roots` through imports (a module's packages count as reached)."""
    sources = {**PRODUCT, **TESTS}
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in sources:
            continue
        seen.add(name)
        stack += [m for m in _imported(name, sources[name]) if m in sources]
        stack += [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
    return seen


def test_every_product_module_is_used_by_the_product_or_its_tests() -> None:
    reached = _reached(set(ENTRY_POINTS) | set(TESTS))
    unused = sorted(set(PRODUCT) - reached)
    assert not unused, f"nothing in the product or its tests imports {unused}: delete them or move the study to experiments/"


def test_the_product_never_imports_experiments_or_scripts() -> None:
    offenders = sorted(
        f"{name} imports {m}"
        for name, path in PRODUCT.items()
        for m in _imported(name, path)
        if m.split(".")[0] in ("experiments", "scripts")
    )
    assert not offenders, offenders


def test_dependencies_point_down() -> None:
    offenders = sorted(
        f"{name} imports {m}"
        for name, path in PRODUCT.items()
        for m in _imported(name, path)
        if m.split(".")[0] in PACKAGES and m.split(".")[0] not in ALLOWED[name.split(".")[0]]
    )
    assert not offenders, offenders
