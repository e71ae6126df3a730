"""Rules of sources.smk: where the images come from (demo corpus, folder, Craigslist scrape), each
ending in one inventory CSV per location.

Nothing is imported here: the rule files import some of these modules at parse
time (standard library only).
"""
