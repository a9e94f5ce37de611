"""autotune: measure how fast Ultralytics YOLO training runs on this machine, and make it faster."""

__version__ = "0.1.0"
