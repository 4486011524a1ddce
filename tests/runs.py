"""Run ``losant-load`` as a user would (a subprocess, so gevent's patching stays out of pytest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    code: int
    output: str
    reports: Path

    @property
    def run_dir(self) -> Path:
        dirs = sorted(p for p in self.reports.iterdir() if p.is_dir())
        assert dirs, f"no run folder was written; output:\n{self.output[-3000:]}"
        return dirs[-1]

    def summary(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "summary.json").read_text())


def write_scenario(folder: Path, data: dict[str, Any], name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_cli(args: list[str], reports: Path, env: dict[str, str] | None = None, timeout: float = 180) -> Run:
    reports.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    extra = ["--reports-dir", str(reports)] if args[:1] == ["run"] else []
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *args, *extra],
                          cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return Run(proc.returncode, proc.stdout + proc.stderr, reports)
