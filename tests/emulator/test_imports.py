"""The emulator stays apart: it imports only stdlib, third-party packages, itself,
``harness.limits``, ``harness.errors`` and ``harness.checking`` (the input-file checker)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "harness" / "emulator"
ALLOWED_HARNESS = {"harness.limits", "harness.errors", "harness.checking"}
#: What the allowed modules may import of the harness: nothing that reaches the rest of it.
LOW_HARNESS = {"harness.limits": {"harness.errors", "harness.checking"}, "harness.checking": {"harness.errors"},
               "harness.errors": set()}


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


def test_the_shared_modules_stay_low() -> None:
    root = PACKAGE.parent
    for module, allowed in LOW_HARNESS.items():
        path = root / (module.split(".", 1)[1] + ".py")
        used = {name for level, name in _imports(path) if level == 0 and name.split(".")[0] == "harness"}
        assert used <= allowed, (module, used - allowed)
