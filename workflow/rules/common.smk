# Shared definitions: where results go, which locations exist, and checks the schema cannot do.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from vacancy.sources import list_locations  # noqa: E402
from vacancy.tsne import resolve_settings  # noqa: E402
from vacancy import resources as sizing  # noqa: E402  (callables for threads/resources)

R = config["results"]
ENVS = str(Path(workflow.basedir) / "envs")


def configured_locations():
    """Locations of the configured source, known before any job runs."""
    source = config["source"]
    if source == "demo":
        return list(config["demo"]["locations"])
    if source == "folder":
        return list_locations(config["folder"]["path"])
    raise WorkflowError(
        "source: craigslist is not available yet (the scraper is a separate issue); "
        "use source: demo or source: folder"
    )


def check_config():
    """Cross-key rules a JSON schema cannot state, reported with the key that is wrong."""
    triage = config["triage"]
    if triage["graphic_below"] > triage["photo_above"]:
        raise WorkflowError(
            f"config: triage.graphic_below ({triage['graphic_below']}) must not exceed "
            f"triage.photo_above ({triage['photo_above']})"
        )
    exclude = config.get("exclude_file")
    if exclude and not Path(exclude).is_file():
        raise WorkflowError(f"config: exclude_file {exclude!r} does not exist")


check_config()
LOCATIONS = configured_locations()
if not LOCATIONS:
    raise WorkflowError(f"config: source {config['source']!r} has no locations")


wildcard_constraints:
    location="[^/]+",
