"""Training with the measured winner: the hand-over of its settings (handover.py), the phase-by-phase prediction
(predict.py, pure), and the full Ultralytics run with its epochs timed against the prediction (run.py).

May import: autotune.search (the study store, profiles), autotune.data and below; never report or the CLI.
"""
