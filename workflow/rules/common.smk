# Shared definitions: where results go, which locations exist, and checks the schema cannot do.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from vacancy.common import read_csv  # noqa: E402
from vacancy.scrape import select_sites  # noqa: E402
from vacancy.sources import list_locations  # noqa: E402
from vacancy.tsne_settings import resolve_settings  # noqa: E402
from vacancy import resources as sizing  # noqa: E402  (callables for threads/resources)

R = config["results"]
ENVS = str(Path(workflow.basedir) / "envs")


def repo_path(relative):
    """A file of the repository as an input path relative to the working directory: Snakemake
    records input paths, so an absolute one would rerun the rule after the repository (with its
    results/) is moved or copied; a relative one stays the same."""
    return os.path.relpath(Path(workflow.basedir) / relative)


def configured_locations():
    """Locations known before any job runs; None when they come from the sites page."""
    source = config["source"]
    if source == "demo":
        return list(config["demo"]["locations"])
    if source == "folder":
        return list_locations(config["folder"]["path"])
    craigslist = config["craigslist"]
    if craigslist["locations"] == "all":
        return None
    return select_sites([], craigslist["locations"], craigslist["start"], craigslist["count"])


def locations(wildcards=None):
    """Every location of this run. With ``craigslist.locations: all`` the list is read from the
    cached sites page, which the ``sites`` checkpoint writes first."""
    if LOCATIONS is not None:
        return LOCATIONS
    craigslist = config["craigslist"]
    sites = read_csv(checkpoints.sites.get().output[0])
    return select_sites(sites, "all", craigslist["start"], craigslist["count"])


def per_location(pattern, **extra):
    """An input function: ``pattern`` expanded over every location (and ``extra`` wildcards)."""
    return lambda wildcards: expand(pattern, location=locations(), **extra)


def check_config():
    """Cross-key rules a JSON schema cannot state, reported with the key that is wrong."""
    triage = config["triage"]
    if triage["graphic_below"] > triage["photo_above"]:
        raise WorkflowError(
            f"config: triage.graphic_below ({triage['graphic_below']}) must not exceed "
            f"triage.photo_above ({triage['photo_above']})"
        )
    if triage["score_graphic_below"] > triage["score_photo_above"]:
        raise WorkflowError(
            f"config: triage.score_graphic_below ({triage['score_graphic_below']}) must not "
            f"exceed triage.score_photo_above ({triage['score_photo_above']})"
        )
    exclude = config.get("exclude_file")
    if exclude and not Path(exclude).is_file():
        raise WorkflowError(f"config: exclude_file {exclude!r} does not exist")


check_config()
LOCATIONS = configured_locations()
if LOCATIONS is not None and not LOCATIONS:
    raise WorkflowError(f"config: source {config['source']!r} has no locations")


wildcard_constraints:
    location="[^/]+",
