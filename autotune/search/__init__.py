"""The search: resolving what the user asked (plan.py), the Optuna study of probes within a budget (runner.py),
the batch ladder, the factor probes, the pick rule, profile files, and the study store (store.py): the only code
that knows the storage and the names of what a study keeps.

May import: autotune.data, autotune.measure and below; never train, report or the CLI.
"""
