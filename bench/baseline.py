"""Today's code, for ratios in the same run: a module of the vacancy package as committed at a
git revision (default ``main``), loaded beside the working tree's own.

    grid_main = baseline.load("grid")   # vacancy.grid as it is on main
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load(module: str, rev: str = "main"):
    """``vacancy.<module>`` at ``rev``, as the module ``vacancy._<rev>_<module>`` (its relative
    imports resolve to the working tree's package, which these modules share unchanged)."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:workflow/vacancy/{module}.py"],
                            check=True, capture_output=True, text=True).stdout
    name = f"vacancy._{rev.replace('/', '_').replace('-', '_')}_{module}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "vacancy"
    exec(compile(source, f"{rev}:{module}.py", "exec"), mod.__dict__)
    return mod
