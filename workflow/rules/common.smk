# Shared definitions: where results go, which locations exist, and checks the schema cannot do.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from vacancy.common import read_csv  # noqa: E402
from vacancy.sources.scrape.selection import select_sites  # noqa: E402
from vacancy.sources.scrape.status import summary as scrape_summary  # noqa: E402
from vacancy.sources.inventory import list_locations  # noqa: E402
from vacancy.map.tsne_settings import resolve_settings  # noqa: E402
from vacancy import resources as sizing  # noqa: E402  (callables for threads/resources)

R = config["results"]
ENVS = str(Path(workflow.basedir) / "envs")


def repo_path(relative):
    """A file of the repository as an input path relative to the working directory: Snakemake
    records input paths, so an absolute one would rerun the rule after the repository (with its
    results/) is moved or copied; a relative one stays the same."""
    return os.path.relpath(Path(workflow.basedir) / relative)


def craigslist_locations():
    """Site names from the config; None when they come from the sites list (``all``)."""
    craigslist = config["craigslist"]
    if craigslist["locations"] == "all":
        return None
    return select_sites([], craigslist["locations"], craigslist["start"], craigslist["count"])


#: Every image source: where a location's files are (``folder``), whether a manifest there lists
#: them (``manifest``: written by the source's own rule in sources.smk), and the locations known
#: before any job runs (``locations``; None when the sites checkpoint finds them). A new source
#: is one more entry here, plus its rule in sources.smk if it makes its files.
SOURCES = {
    "demo": {
        "folder": f"{R}/raw",
        "manifest": True,
        "locations": lambda: list(config["demo"]["locations"]),
    },
    "craigslist": {"folder": f"{R}/raw", "manifest": True, "locations": craigslist_locations},
    "folder": {
        "folder": config["folder"]["path"],
        "manifest": False,
        "locations": lambda: list_locations(config["folder"]["path"]),
    },
}
SOURCE = SOURCES[config["source"]]


def location_dir(wildcards):
    """The folder of one location's image files."""
    return os.path.join(SOURCE["folder"], wildcards.location)


def location_input(wildcards):
    """What the inventory of a location reads: the source's manifest, or the folder itself."""
    folder = location_dir(wildcards)
    return os.path.join(folder, "manifest.csv") if SOURCE["manifest"] else folder


def locations(wildcards=None):
    """Every location of this run. With ``craigslist.locations: all`` the list is read from the
    cached sites list, which the ``sites`` checkpoint writes first."""
    if LOCATIONS is not None:
        if not LOCATIONS:  # only a scrape gets here: the probe needs no location
            raise WorkflowError(
                "config: craigslist.locations is empty: name the sites to scrape, or all "
                "(the craigslist_probe target alone runs without)"
            )
        return LOCATIONS
    craigslist = config["craigslist"]
    sites = read_csv(checkpoints.sites.get().output[0])
    return select_sites(sites, "all", craigslist["start"], craigslist["count"])


def report_incomplete_scrapes():
    """At the end of a run that scraped (onsuccess, onerror): the locations that are not
    complete and the --forcerun arguments that finish them (vacancy.sources.scrape.status)."""
    names = LOCATIONS
    sites_csv = Path(R) / "raw" / "sites.csv"
    if names is None:  # locations: all; before the sites list exists nothing was scraped
        craigslist = config["craigslist"]
        names = (
            select_sites(read_csv(sites_csv), "all", craigslist["start"], craigslist["count"])
            if sites_csv.is_file()
            else []
        )
    message = scrape_summary(f"{R}/raw", names)
    if message:
        print(message, file=sys.stderr)


def triage_scale():
    """The triage value the report plots and sorts by, and its two thresholds: the ONE place to
    switch the report from the entropy to another triage column (a model's score)."""
    triage = config["triage"]
    if triage["method"] == "model":
        return {
            "column": "score",
            "label": "triage score (probability of a photo)",
            "low": triage["score_graphic_below"],
            "high": triage["score_photo_above"],
        }
    return {
        "column": "entropy",
        "label": "entropy (nats)",
        "low": triage["graphic_below"],
        "high": triage["photo_above"],
    }


def curator_file(key):
    """An input function: the curator's exclude or include file (``key``), if the config names
    one. As an input, editing it reruns select and what follows (the exclude file also dedup,
    which never keeps an excluded image), nothing upstream."""
    return lambda wildcards: [config[key]] if config.get(key) else []


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
    for key in ("exclude_file", "include_file"):
        named = config.get(key)
        if named and not Path(named).is_file():
            raise WorkflowError(f"config: {key} {named!r} does not exist")


check_config()
LOCATIONS = SOURCE["locations"]()
if LOCATIONS is not None and not LOCATIONS and config["source"] != "craigslist":
    raise WorkflowError(f"config: source {config['source']!r} has no locations")


wildcard_constraints:
    location="[^/]+",


#: A living map (README "A living map: extending a layout"): the saved layout's folder, and
#: whether this run adds to it. ``extend`` without a saved layout runs fresh, with a warning.
LAYOUT = config["layout"]["dir"]
LAYOUT_MODE = config["layout"]["mode"]
if LAYOUT_MODE == "extend" and not os.path.exists(os.path.join(LAYOUT, "provenance.json")):
    print(
        f"layout.mode is extend but {LAYOUT}/ holds no saved layout (run `snakemake "
        "save_layout` after a fresh run): laying out fresh",
        file=sys.stderr,
    )
    LAYOUT_MODE = "fresh"
EXTEND = LAYOUT_MODE == "extend"


def layout_file(name):
    """A file of the saved layout, an input of the extend rules only."""
    return os.path.join(LAYOUT, name) if EXTEND else []
