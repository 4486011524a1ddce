"""The harness's one-way data flow (docs/ARCHITECTURE.md) holds in its imports.

Every import of every harness module counts: module level, inside functions, and under
``TYPE_CHECKING`` (a cycle hidden there is still a cycle for a reader). Each module may import
only modules of earlier stages, or modules of its own package (a package is one unit). The
order below is the import order of the data flow scenario → target → provision → schedule →
users → record → analysis → report → console, with the reasons where import order and data
flow differ written next to them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"

#: Stages in import order; within a stage, units in import order too. A unit is a module or a
#: package (``harness.analysis`` stands for every module in it).
STAGES: list[tuple[str, list[str]]] = [
    # the package's version, errors, the input toolkit and the limits table: read by every stage
    # and by the emulator (tests/emulator/test_imports.py)
    ("foundation", ["harness", "harness.errors", "harness.checking", "harness.limits"]),
    # a server of its own, started by the target (see EMULATOR_USERS)
    ("emulator", ["harness.emulator"]),
    ("scenario", ["harness.scenario"]),
    # the shared types of the early stages (Secret, Login, Device, Fleet): one low module, so that
    # target and provision need not import each other
    ("fleet", ["harness.fleet"]),
    ("target", ["harness.target", "harness.preflight"]),
    ("provision", ["harness.provision"]),
    # safety: a live tenant's plan (peak rate per limit) is what the scheduler will send
    ("schedule", ["harness.schedule", "harness.safety"]),
    # record.py is the sample contract (columns, error kinds): the users write it, the analysis reads
    # it, so it comes before both in import order, while data flows users -> recorder -> analysis
    ("record", ["harness.record", "harness.accepted", "harness.harness_calls"]),
    # the running run the users share (RunContext, Reporter, Unit, the recorder's Protocol)
    ("run", ["harness.session"]),
    ("users", ["harness.users"]),
    ("analysis", ["harness.analysis"]),
    ("report", ["harness.report"]),
    # judging a run folder: the read-back runs after the load and hands what it read to
    # analysis.integrity; judge and rundir put analysis and report together
    ("judging", ["harness.readback", "harness.judge", "harness.rundir"]),
    ("console", ["harness.console"]),
    # the run's life cycle on Locust and the command line: may use everything before
    ("life cycle", ["harness.live", "harness.webui", "harness.distributed", "harness.gc_policy",
                    "harness.interrupt", "harness.options", "harness.prepare", "harness.lifecycle",
                    "harness.plugin", "harness.locust_entry", "harness.cli"]),
]

#: The only harness modules that import the emulator: the target starts it, the command line serves it.
EMULATOR_USERS = {"harness.target", "harness.cli"}

#: (importer, imported) pairs against the order, each with the reason a reader would accept. None
#: today: the criteria a scenario declares are parsed in the scenario stage (harness.scenario.criteria)
#: and only judged in the analysis.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _units() -> list[str]:
    return [unit for _, units in STAGES for unit in units]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit_of(module: str) -> str | None:
    """The longest unit that is the module or a package holding it."""
    best = None
    for unit in _units():
        if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best)):
            best = unit
    if best == "harness" and module != "harness":
        return None  # a module no stage names
    return best


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every harness import, wherever it is in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "harness":  # from harness import distributed, users, __version__
                found += [(node.lineno, f"harness.{alias.name}" if _is_module(f"harness.{alias.name}") else "harness")
                          for alias in node.names]
            else:
                found.append((node.lineno, name))
    return [(line, name) for line, name in found if name == "harness" or name.startswith("harness.")]


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _harness_modules() -> list[tuple[Path, str]]:
    return [(p, _module_name(p)) for p in sorted(PACKAGE.rglob("*.py")) if "emulator" not in p.relative_to(PACKAGE).parts]


def test_every_harness_module_has_a_stage() -> None:
    unplaced = [name for _, name in _harness_modules() if _unit_of(name) is None]
    assert not unplaced, f"add these modules to a stage in STAGES (tests/test_layering.py): {unplaced}"


def test_each_stage_imports_only_earlier_stages() -> None:
    order = {unit: i for i, unit in enumerate(_units())}
    bad = []
    for path, module in _harness_modules():
        unit = _unit_of(module)
        assert unit is not None
        for line, name in _imports(path, module):
            target = _unit_of(name)
            where = f"{path.relative_to(ROOT)}:{line}: {module} imports {name}"
            if target == "harness.emulator" and unit not in EMULATOR_USERS:
                bad.append(f"{where} (only {sorted(EMULATOR_USERS)} may import the emulator)")
                continue
            if target is None or target == unit or order[target] < order[unit]:
                continue
            if (unit, target) not in EXCEPTIONS:
                bad.append(f"{where} ({target} comes after {unit} in STAGES)")
    assert not bad, "\n".join(bad)


def test_exceptions_are_still_needed() -> None:
    """A documented exception whose import is gone is removed from the list, so the list stays true."""
    used = set()
    for path, module in _harness_modules():
        unit = _unit_of(module)
        for _, name in _imports(path, module):
            used.add((unit, _unit_of(name)))
    assert set(EXCEPTIONS) <= used, set(EXCEPTIONS) - used


def test_the_checker_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    """The parser must not miss the imports that used to hide cycles."""
    source = tmp_path / "mod.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness.session import RunContext\n"
                      "def f():\n    from harness.users import base\n    import harness.lifecycle\n"
                      "from harness import plugin\n")
    names = [name for _, name in _imports(source, "harness.fake")]
    assert names == ["harness.session", "harness.users", "harness.lifecycle", "harness.plugin"] or \
        sorted(names) == sorted(["harness.session", "harness.users", "harness.lifecycle", "harness.plugin"])
