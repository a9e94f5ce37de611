"""Plain data: what is measured and what is kept (configs, probe results, the machine, a study's records, training
runs, statuses). Frozen dataclasses with to_dict/from_dict.

May import: autotune.units, autotune.files, autotune.errors; nothing that measures, decides or draws.
"""
