"""Which scraped locations are incomplete, and how to fetch what they miss (standard library only).

Why: a location that stopped early (blocked, a result page that kept failing) or that left out
listings or photos for a reason that may pass (timeouts, 5xx, 429, an unreadable robots.txt)
says so in its ``scrape_state.json`` (``complete: false`` and the reason), but Snakemake sees its
outputs and never runs it again by itself: rerunning is the user's call (after a block, hours or
days later). So the workflow prints :func:`summary` at the end of every run that scraped, with
the ``--forcerun`` arguments that rerun just those locations (each resumes from its journal and
asks only for what it misses), and ``python -m vacancy.sources.scrape.status results/raw``
prints every location's state. Imported by the Snakefile when it is parsed: standard library only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: The state file a scrape job writes last, beside its manifest (see ``location.py``).
STATE = "scrape_state.json"
#: The output that ``--forcerun`` names to rerun one location's scrape (and what follows it).
MANIFEST = "manifest.csv"
#: Locations listed with their reason in the end-of-run summary (the command names all).
SHOWN = 10


def states(raw_dir, locations=None) -> dict[str, dict]:
    """Location -> its scrape state, for the locations scraped under ``raw_dir`` (all of them,
    or those of ``locations``). A state file that cannot be read is reported as incomplete."""
    raw = Path(raw_dir)
    names = sorted(p.parent.name for p in raw.glob(f"*/{STATE}")) if locations is None else locations
    found = {}
    for name in names:
        path = raw / name / STATE
        if not path.is_file():
            continue
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            state = {"complete": False, "reason": f"{path} unreadable ({exc})"}
        found[name] = state if isinstance(state, dict) else {
            "complete": False, "reason": f"{path} is not a JSON object"}
    return found


def incomplete(raw_dir, locations=None) -> dict[str, str]:
    """Location -> why it is not complete, for the scraped locations that are not."""
    return {name: str(state.get("reason") or "no reason recorded")
            for name, state in states(raw_dir, locations).items() if state.get("complete") is not True}


def forcerun_args(raw_dir, names) -> str:
    """``--forcerun`` with each location's manifest: Snakemake reruns those scrapes only."""
    return "--forcerun " + " ".join(str(Path(raw_dir) / name / MANIFEST) for name in names)


def summary(raw_dir, locations=None) -> str | None:
    """The end-of-run message about incomplete locations, or None when every one is complete."""
    missing = incomplete(raw_dir, locations)
    if not missing:
        return None
    total = len(states(raw_dir, locations))
    lines = [f"vacancy: {len(missing)} of {total} scraped locations are incomplete; what they have "
             "is used, and a rerun fetches only what they miss:"]
    lines += [f"  {name}: {reason}" for name, reason in list(missing.items())[:SHOWN]]
    if len(missing) > SHOWN:
        lines.append(f"  ... and {len(missing) - SHOWN} more "
                     f"(python -m vacancy.sources.scrape.status {raw_dir})")
    lines += ["When the cause has passed (after a block, wait hours or days), rerun them with "
              "your command plus:", "  " + forcerun_args(raw_dir, missing)]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Print each scraped location's state; exit status 1 when any is incomplete."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw_dir", nargs="?", default="results/raw",
                        help="the scrape's folder (default results/raw)")
    parser.add_argument("--forcerun", action="store_true",
                        help="print only the --forcerun arguments for the incomplete locations")
    args = parser.parse_args(argv)
    found = states(args.raw_dir)
    missing = incomplete(args.raw_dir)
    if args.forcerun:
        if missing:
            print(forcerun_args(args.raw_dir, missing))
        return 1 if missing else 0
    for name, state in found.items():
        status = "complete" if name not in missing else f"INCOMPLETE: {missing[name]}"
        print(f"{name}\t{state.get('files', '?')} photos\t{status}")
    print(f"{len(found)} locations, {len(missing)} incomplete")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
