"""Acquisition: uncertainty scores, selection strategies, learners and the distillation loop.

Import the submodules directly (``edgedistal.acquire.scores`` is torch-only and light;
``strategies`` adds pandas; ``learners``/``loop`` pull in sklearn and the detector lazily).
"""

from edgedistal.acquire.scores import bald, entropy, least_confidence, margin, uncertainty_table

__all__ = ["bald", "entropy", "least_confidence", "margin", "uncertainty_table"]
