"""Datasets autotune writes: the embedded default workload (demo.py writes what demo_draw.py draws) and the copy
pre-resized to imgsz (resize.py).

May import: autotune.measure and below; never search, train, report or the CLI.
"""
