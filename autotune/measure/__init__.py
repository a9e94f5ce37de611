"""Measurement: one probe of one configuration (real Ultralytics training in its own subprocess), the loader-only
and compute-only ceilings, the cache bench, the machine's readings, and what autotune does to Ultralytics.

probe.py (the caller's side) -> isolate.py (the subprocess boundary) -> probe_run.py (inside it: staging.py,
hooks.py, passes.py, ultralytics_glue.py). May import: autotune.status, autotune.records and below; never search,
report, train, data or the CLI.
"""
