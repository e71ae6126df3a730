"""Rules of images.smk: per-image preparation (triage, dHash, features, thumbnail), dedup and
select.

Nothing is imported here: the rule files import some of these modules at parse
time (standard library only).
"""
