"""Every rule names a conda env (envs/*.yaml) that holds what its code imports, at our pinned versions.

On a cluster without our virtualenv, ``--software-deployment-method conda`` builds each rule's
environment from its ``conda:`` file alone; an import missing there fails only on the cluster, hours
into a run. So the rules and their envs come from Snakemake itself (the workflow as it parses), the
imports from the rule's script and, transitively, the vacancy modules it uses (``ast``), and the
import-to-distribution names from the installed packages' metadata (PIL -> pillow, sklearn ->
scikit-learn).
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from functools import lru_cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = REPO / "workflow"  # vacancy/ lives here; the scripts put it on sys.path


def canonical(name: str) -> str:
    """Distribution names compare case- and separator-insensitively (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=1)
def workflow_rules() -> dict[str, dict]:
    """Each rule of the workflow as Snakemake parses it (repository config): its conda env file,
    script, and whether it runs on the submitting machine (localrules, or nothing to run)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[REPO / "config.yaml"]),
            storage_settings=StorageSettings(),
            snakefile=REPO / "Snakefile",
            workdir=REPO,
        )._workflow
        rules = {}
        for rule in workflow.rules:
            script = Path(rule.snakefile).parent / rule.script if rule.script else None
            rules[rule.name] = {
                "conda": rule.conda_env,
                "script": script.resolve() if script else None,
                "local": rule.name in workflow._localrules or rule.norun,
                "norun": rule.norun,
            }
        return rules


def _optional(node: ast.AST, parents: list[ast.AST]) -> bool:
    """An import guarded by ``try/except ImportError`` (or Exception) or ``contextlib.suppress``
    is optional: the code runs without it (e.g. ImageMagick's version in provenance records)."""
    for parent in parents:
        if isinstance(parent, ast.Try) and any(node in ast.walk(s) for s in parent.body):
            for handler in parent.handlers:
                names = ast.unparse(handler.type) if handler.type else "BaseException"
                if re.search(r"\b(ImportError|ModuleNotFoundError|Exception|BaseException)\b", names):
                    return True
        if isinstance(parent, ast.With) and "suppress" in ast.unparse(parent.items[0].context_expr):
            return True
    return False


def _walk_with_parents(tree: ast.AST):
    stack = [(tree, [])]
    while stack:
        node, parents = stack.pop()
        yield node, parents
        for child in ast.iter_child_nodes(node):
            stack.append((child, [*parents, node]))


def _vacancy_module_file(dotted: str) -> Path | None:
    base = PACKAGE_ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def third_party_imports(script: Path) -> set[str]:
    """Top-level names of the non-stdlib, non-vacancy modules ``script`` needs, following every
    vacancy module it imports (absolute or relative), transitively."""
    found: set[str] = set()
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        package = _module_name(path) if path.is_relative_to(PACKAGE_ROOT / "vacancy") else ""
        if path.name != "__init__.py":
            package = package.rpartition(".")[0]
        for node, parents in _walk_with_parents(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or _optional(node, parents):
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif node.level:  # relative: from .x import y / from . import x
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
                targets = [mod] + [f"{mod}.{alias.name}" for alias in node.names]
            else:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for target in targets:
                top = target.split(".")[0]
                if top == "vacancy":
                    module_file = _vacancy_module_file(target)
                    if module_file:
                        todo.append(module_file)
                elif top not in sys.stdlib_module_names and target == targets[0]:
                    found.add(top)
    return found


@lru_cache(maxsize=1)
def _import_to_distributions() -> dict[str, list[str]]:
    return packages_distributions()


def distribution(import_name: str) -> str:
    """The distribution that provides an import name, from installed metadata (PIL -> pillow)."""
    dists = _import_to_distributions().get(import_name)
    assert dists, f"no installed distribution provides the import {import_name!r}"
    return canonical(dists[0])


def pyproject_pins() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = {}
    for spec in data["project"]["dependencies"]:
        req = Requirement(spec)
        exact = [s.version for s in req.specifier if s.operator == "=="]
        pins[canonical(req.name)] = exact[0] if exact else ""
    return pins


def env_packages(env_file: Path) -> dict[str, str]:
    """name -> pinned version ('' if unpinned) of every conda and pip entry of an env file."""
    env = yaml.safe_load(env_file.read_text())
    packages = {}
    for dep in env.get("dependencies", []):
        entries = dep.get("pip", []) if isinstance(dep, dict) else [dep]
        for entry in entries:
            match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(?:(==|=)\s*([^\s,;]+))?\s*", entry)
            assert match, f"{env_file.name}: cannot read dependency {entry!r}"
            packages[canonical(match.group(1))] = match.group(3) or ""
    return packages


RUNNABLE = sorted(name for name, rule in workflow_rules().items() if not rule["norun"])


def test_the_workflow_has_the_rules_we_expect():
    assert {"prepare", "dedup", "select", "pca", "tsne", "grid", "viewer",
            "tiles", "inventory"} <= set(RUNNABLE)


@pytest.mark.parametrize("rule", RUNNABLE)
def test_every_rule_names_an_env_file_that_exists(rule):
    env = workflow_rules()[rule]["conda"]
    assert env, f"rule {rule} has no conda: directive"
    assert Path(env).is_file() and Path(env).parent == REPO / "envs", env


@pytest.mark.parametrize("rule", RUNNABLE)
def test_every_env_lists_what_its_rule_imports_at_the_pinned_version(rule):
    info = workflow_rules()[rule]
    assert info["script"] and info["script"].is_file(), f"rule {rule}: no script to check"
    env_file = Path(info["conda"])
    listed = env_packages(env_file)
    pins = pyproject_pins()
    needed = {distribution(name) for name in third_party_imports(info["script"])}
    missing = sorted(needed - set(listed))
    assert not missing, f"rule {rule}: {env_file.name} lacks {missing}"
    for dist in sorted(needed):
        assert listed[dist] == pins.get(dist), (
            f"{env_file.name}: {dist} pinned to {listed[dist]!r}, pyproject.toml says {pins.get(dist)!r}")
    if "wand" in needed:  # Wand is only a binding: the env must bring ImageMagick itself
        assert "imagemagick" in listed, f"{env_file.name}: wand needs the imagemagick package"


def test_env_pins_agree_with_pyproject_for_every_package_they_share():
    pins = pyproject_pins()
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        for name, version in env_packages(env_file).items():
            if name in pins and pins[name]:
                assert version == pins[name], f"{env_file.name}: {name}={version}, pyproject {pins[name]}"


def test_import_scan_follows_vacancy_modules_and_skips_optional_imports(tmp_path):
    """The scanner itself: grid's script reaches lapjv and scipy only through vacancy.map.grid, and
    the guarded wand import of vacancy.common (provenance only) is not a requirement."""
    grid = third_party_imports(REPO / "workflow/scripts/grid.py")
    assert {"numpy", "lapjv", "scipy"} <= grid and "wand" not in grid
    script = tmp_path / "s.py"
    script.write_text("import os\ntry:\n    import ujson\nexcept ImportError:\n    ujson = None\n"
                      "def f():\n    import sklearn.decomposition\n")
    assert third_party_imports(script) == {"sklearn"}
    assert distribution("sklearn") == "scikit-learn" and distribution("PIL") == "pillow"


def pip_pins() -> dict[str, str]:
    """Every ``name==version`` that pip installs: pyproject's and the envs' pip sections."""
    pins = {name: version for name, version in pyproject_pins().items() if version}
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        for dep in yaml.safe_load(env_file.read_text()).get("dependencies", []):
            if isinstance(dep, dict):
                for entry in dep.get("pip", []):
                    name, _, version = entry.partition("==")
                    pins[canonical(name.strip())] = version.strip()
    return pins


def wheel_available(specs: list[str]) -> subprocess.CompletedProcess:
    """Ask the registry, without installing anything, whether a binary wheel exists for each spec
    for this Python (3.11, as the envs pin) on this platform: a cluster node may have no compiler.
    ``--dry-run`` reads the wheels' metadata, not the wheels: about 1 s for all the pins."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps",
         "--only-binary", ":all:", "--ignore-installed", *specs],
        capture_output=True, text=True, timeout=300)


def test_every_pypi_pin_has_a_wheel_for_this_python():
    """lapjv 1.3.29 had no wheel (1.3.27 has): an env pinned to it needed a compiler to build."""
    specs = [f"{name}=={version}" for name, version in sorted(pip_pins().items())]
    if wheel_available(specs).returncode == 0:
        return
    missing = [spec for spec in specs if wheel_available([spec]).returncode != 0]
    if len(missing) == len(specs):
        pytest.skip("the package registry (PyPI) is unreachable: no pin could be checked")
    assert not missing, f"no binary wheel for Python {sys.version.split()[0]} on PyPI: {missing}"
