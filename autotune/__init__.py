"""autotune: measure how fast Ultralytics YOLO training runs on this machine, and make it faster.

Layers (import-linter contracts in pyproject.toml enforce them): cli > report > train > search > data > measure >
status > records > units, files > errors. README.md "How the code is laid out" has one line per module.
"""

from autotune.offline import go_offline

go_offline()  # before anything can import Ultralytics, in every process that imports autotune

__version__ = "0.1.0"
