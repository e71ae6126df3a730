"""The Snakefile as Snakemake sees it: what its parse imports, and the ecosystem's own checks.

Every Snakemake process parses the Snakefile, on a cluster once per job, so the modules the rule
files import at parse time must stay within the standard library.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

#: Third-party packages the parse must not import (each costs from 0.1 to 1 s).
HEAVY = ("numpy", "pandas", "requests", "bs4", "PIL", "openTSNE", "sklearn", "h5py", "wand",
         "yaml", "scipy")


def parse_time_imports() -> list[str]:
    """The ``vacancy`` modules the rule files import at top level."""
    modules = []
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        for line in smk.read_text().splitlines():
            match = re.match(r"from (vacancy[\w.]*) import (\w+)|import (vacancy[\w.]*)", line)
            if match and match.group(1) == "vacancy":  # from vacancy import resources
                modules.append(f"vacancy.{match.group(2)}")
            elif match:
                modules.append(match.group(1) or match.group(3))
    return modules


def test_the_rule_files_import_only_standard_library_modules_at_parse_time():
    modules = parse_time_imports()
    assert {"vacancy.sources.scrape.selection", "vacancy.map.tsne_settings",
            "vacancy.resources"} <= set(modules)
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'workflow')!r})\n"
            + "".join(f"import {m}\n" for m in modules)
            + f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]", f"parsing the Snakefile imports {loaded}"


def test_the_scraper_package_still_exports_its_entry_points():
    """vacancy.sources.scrape imports its modules on first use; its names must still resolve."""
    import vacancy.sources.scrape as scrape

    assert scrape.scrape_location.__module__ == "vacancy.sources.scrape.location"
    assert scrape.select_sites([], ["b", "a", "b"], 1) == ["a"]
    assert set(scrape.__all__) >= {"DEFAULTS", "list_sites", "max_rent_for", "check_image"}


def _lint(config_args: list[str], tmp_path) -> str:
    """What ``snakemake --lint`` prints for the repository's Snakefile with these settings."""
    from conftest import SNAKEMAKE, no_slurm_controller

    env = {**os.environ, **no_slurm_controller(tmp_path)}
    result = subprocess.run([str(SNAKEMAKE), "--lint", *config_args], cwd=REPO, env=env,
                            capture_output=True, text=True)
    return result.stdout + result.stderr


@pytest.mark.parametrize("source", ["demo", "craigslist", "folder"])
def test_snakemake_lint_reports_nothing(source, tmp_path):
    """Each source switches rules on (a catalog reviewer runs --lint first); none may lint."""
    config_args = ["--config", f"source={source}"]
    if source == "folder":
        (tmp_path / "photos" / "somewhere").mkdir(parents=True)
        config_args.append(f"folder={{path: {tmp_path / 'photos'}}}")
    out = _lint(config_args, tmp_path)
    assert "Congratulations, your workflow is in a good condition!" in out, out
    assert not re.search(r"^\s+\* ", out, re.MULTILINE), out


def test_rule_files_pass_snakefmt_check():
    """The Snakefile and rule files are formatted as snakefmt (pyproject.toml's line length)."""
    files = ["Snakefile", *sorted(str(p.relative_to(REPO))
                                  for p in (REPO / "workflow/rules").glob("*.smk"))]
    result = subprocess.run([str(Path(sys.executable).parent / "snakefmt"), "--check", *files],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
