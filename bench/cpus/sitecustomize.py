"""bench/loader_truth.py's stand-in for a machine with more cores: with AUTOTUNE_BENCH_CPUS=N set and this folder on
PYTHONPATH, os.cpu_count() says N in every Python process (the probe's subprocess and the long run included).

Ultralytics starts at most os.cpu_count() loader workers; a GPU box's 8-16 workers hold 32-64 prefetched batches,
the condition that hid a slow loader from the probe. On a 2-core VM this is the only way to get that queue: the
workers then share the 2 real cores, so their throughput is real, only the count is raised.
"""

import os

_N = os.environ.get("AUTOTUNE_BENCH_CPUS", "")

if _N.isdigit() and int(_N) > 0:
    os.cpu_count = lambda: int(_N)
