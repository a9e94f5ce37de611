"""No network at run time: Ultralytics' switches, set before it is first imported in any autotune process.

Ultralytics decides online or offline when it is imported (a DNS look-up, unless YOLO_OFFLINE is set), and with
auto-install on, `check_requirements` runs `pip install` into the user's environment (a non-image file named .jpg
made it try to install pi-heif). autotune never downloads weights, fonts or datasets and never installs packages,
so both switches are forced, whatever the environment says. Child processes inherit them.
"""

from __future__ import annotations

import os

SWITCHES = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}


def go_offline() -> None:
    """Set Ultralytics' offline and no-autoinstall switches in this process's environment."""
    os.environ.update(SWITCHES)
