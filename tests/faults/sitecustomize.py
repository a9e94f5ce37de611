"""Fault injection for tests/test_faults.py: imported at start-up by every Python process that has this folder on
PYTHONPATH (the CLI and the probe subprocesses it starts), and active only with AUTOTUNE_FAULT set.

- disk_full: every np.save of a .npy after the first two raises "No space left on device", as a full disk would;
- ram_short: psutil reports 64 KiB of RAM available, as a busy machine would (Ultralytics then drops cache=ram);
- machine: this process fingerprints as the machine in AUTOTUNE_FAULT_MACHINE (Machine.to_dict() as JSON), so a
  study recorded on other hardware (tests/data/legacy_study) reads as measured here.
"""

import errno
import os

FAULT = os.environ.get("AUTOTUNE_FAULT", "")

if FAULT == "disk_full":
    import numpy as np

    _save, _calls = np.save, [0]

    def _full_disk_save(file, *args, **kwargs):
        if str(file).endswith(".npy"):
            _calls[0] += 1
            if _calls[0] > 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return _save(file, *args, **kwargs)

    np.save = _full_disk_save

if FAULT == "ram_short":
    import psutil

    _virtual_memory = psutil.virtual_memory

    def _short_memory():
        return _virtual_memory()._replace(available=64 * 2**10)

    psutil.virtual_memory = _short_memory

if FAULT == "machine":
    import json

    import autotune.measure.machine as _machine
    from autotune.records.machine import Machine

    _recorded = Machine.from_dict(json.loads(os.environ["AUTOTUNE_FAULT_MACHINE"]))
    _machine.fingerprint = lambda: _recorded
