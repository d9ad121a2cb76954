"""Acquisition: uncertainty scores, selection strategies, learners and the distillation loop.

Import the submodules directly (``edgedistal.acquire.uncertainty`` is torch-only and light;
``strategies`` adds pandas; ``learners``/``loop`` pull in sklearn and the detector lazily).
"""

from edgedistal.acquire.uncertainty import (
    bald,
    entropy,
    least_confidence,
    margin,
    uncertainty_table,
)

__all__ = ["bald", "entropy", "least_confidence", "margin", "uncertainty_table"]
