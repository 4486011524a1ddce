"""The emulator stays apart: it imports only stdlib, third-party packages, itself,
``harness.limits`` and ``harness.errors``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "harness" / "emulator"
ALLOWED_HARNESS = {"harness.limits", "harness.errors"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def test_emulator_imports_only_allowed_modules() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    bad = []
    for path in files:
        for level, name in _imports(path):
            top = name.split(".")[0]
            if level > 0 or name.startswith("harness.emulator") or name in ALLOWED_HARNESS:
                continue
            if top == "harness":
                bad.append(f"{path.name}: {name}")
            elif top not in sys.stdlib_module_names:
                __import__(top)  # third-party: must be installed
    assert not bad, bad
