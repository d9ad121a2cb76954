"""What an evaluation plans and how: its configuration (budgets, seeds, protocol, how arms climb
the caps) and the arms it trains. Shared by the planner (:mod:`edgedistal.pipeline.evaluate`) and
the cell trainer (:mod:`edgedistal.pipeline.cell_training`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgedistal.errors import EdgedistalError

PROTOCOLS = ("converged", "steps", "epochs")
RESERVED = ("random", "balanced", "full", "rs2")
#: The default budget curve: selection matters most at 1-5 % (METHODS.md, "enough power").
DEFAULT_BUDGETS = (0.01, 0.02, 0.05, 0.1, 0.2)
BASELINES = ("random", "balanced", "stratified", "rs2")


def auto_seeds(budget: float) -> int:
    """``--seeds auto``: small arms are cheap and noisy, so 5 seeds at ≤ 5 %, 3 above."""
    return 5 if budget <= 0.05 + 1e-9 else 3


def parse_seeds(value: int | str) -> int | str:
    """``auto`` or a positive int (CLI text accepted)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise EdgedistalError(f"--seeds {value!r} is neither a number nor auto", "e.g. --seeds 5 or --seeds auto") from None
    if n < 1:
        raise EdgedistalError("--seeds must be at least 1", "e.g. --seeds 5 or --seeds auto")
    return n
#: Where the converged protocol early-stops (see EvalConfig.val_source).
VAL_SOURCES = ("carve", "split")
#: Who climbs the converged protocol's caps together (see EvalConfig.escalate).
ESCALATE = ("group", "cell")


@dataclass
class EvalConfig:
    """How the comparison is run; saved next to the results so a report can state it."""

    budgets: tuple[float, ...] = DEFAULT_BUDGETS
    seeds: int | str = "auto"  # an int for every budget, or "auto" (see auto_seeds)
    protocol: str = "converged"
    #: ``samples``: uniform over pool samples (the usual active-learning baseline);
    #: ``groups``: whole identity groups in random order (at most one group cut to hit the size).
    random_mode: str = "samples"
    #: converged: where each arm early-stops. ``carve``: a by-group ``val_fraction`` of the arm's
    #: own rows (every label inside the budget); ``split``: the manifest's val split, the same rows
    #: for every arm (labels outside the budget, as `edgedistal train` uses them): small arms keep
    #: all their rows for training and stop on a val set large enough to trust.
    val_source: str = "carve"
    val_fraction: float = 0.15  # converged, carve: share of the arm's rows (by group) held out for val
    val_max: int | None = None  # converged, split: at most this many val rows (whole groups, fixed draw)
    max_epochs: float = 30.0  # converged: step cap = this many passes over the arm's train rows
    min_steps: int = 200  # converged: tiny arms still get this many steps
    max_steps: int | None = None  # converged: hard cap for every arm (None: none)
    patience: int = 5  # converged: evaluations without a val-AUC gain before stopping
    converge_tol: float = 0.01  # val AUC rising more than this over the last third = not converged
    ceiling_epochs: float = 96.0  # converged: a still-improving arm is retrained with a larger cap up to this
    #: converged: the full arm's first cap in passes (None: ``max_epochs``). The full pool converges
    #: long after small arms; starting it at 12 passes retrains it at 12, 24 and 48 before the run that counts.
    full_max_epochs: float | None = None
    grow: float = 2.0  # converged: cap × this per retraining
    #: converged: who climbs the caps. ``group``: the paired arms of a budget and seed together
    #: (every arm trains every cap any of them needed, each keeps its best run on val); ``cell``:
    #: each arm alone, on its own val curve (the gate then decides verdicts as much as the subsets).
    escalate: str = "group"
    include_full: bool = True
    full_seeds: int | None = None  # seeds of the full arm (None: the seeds of the largest budget)
    baselines: tuple[str, ...] = BASELINES
    seed_offset: int = 0  # training seed = seed_offset + seed index
    #: a finished cell whose kept model left no test scores (made before they were kept) retrains
    #: that one run (same seed and cap) to score the test set; its test AUC must reproduce
    rescore: bool = False
    notes: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.protocol == "early_stop":  # the name before the step cap grew with the arm
            self.protocol = "converged"
        if self.protocol not in PROTOCOLS:
            raise EdgedistalError(f"unknown protocol {self.protocol!r}", f"use one of {', '.join(PROTOCOLS)}")
        if self.random_mode not in ("samples", "groups"):
            raise EdgedistalError(f"unknown random mode {self.random_mode!r}", "use samples or groups")
        if not self.budgets or any(not (0 < b <= 1) for b in self.budgets):
            raise EdgedistalError(f"budgets {self.budgets} must lie in (0, 1]", "e.g. --budgets 0.01,0.02,0.05,0.1,0.2")
        self.seeds = parse_seeds(self.seeds)
        unknown = set(self.baselines) - set(BASELINES)
        if unknown:
            raise EdgedistalError(f"unknown baseline(s) {sorted(unknown)}", f"use {', '.join(BASELINES)}")
        if self.escalate not in ESCALATE:
            raise EdgedistalError(f"unknown escalation {self.escalate!r}", f"use one of {', '.join(ESCALATE)}")
        if self.val_source not in VAL_SOURCES:
            raise EdgedistalError(f"unknown val source {self.val_source!r}", f"use one of {', '.join(VAL_SOURCES)}")
        if self.val_max is not None and self.val_max < 2:
            raise EdgedistalError(f"val_max {self.val_max} must be ≥ 2", "e.g. --val-max 1000, or leave it out")
        if not (0 < self.val_fraction < 1) or not (self.max_epochs > 0) or self.min_steps < 1:
            raise EdgedistalError("converged protocol needs 0 < val_fraction < 1, max_epochs > 0, min_steps ≥ 1")
        if not (self.ceiling_epochs >= self.max_epochs) or not (self.grow > 1):
            raise EdgedistalError(f"ceiling_epochs {self.ceiling_epochs} must be ≥ max_epochs {self.max_epochs} "
                                  f"and grow {self.grow} > 1", "e.g. --max-epochs 12 --ceiling-epochs 96")
        if self.full_max_epochs is not None and not (0 < self.full_max_epochs <= self.ceiling_epochs):
            raise EdgedistalError(f"full_max_epochs {self.full_max_epochs} must lie in (0, ceiling_epochs "
                                  f"{self.ceiling_epochs}]", "e.g. --full-max-epochs 48 --ceiling-epochs 96")

    def seeds_at(self, budget: float) -> int:
        """Seeds at ``budget`` (``auto``: more where arms are small)."""
        return auto_seeds(budget) if self.seeds == "auto" else int(self.seeds)

    def n_full_seeds(self) -> int:
        return self.full_seeds or self.seeds_at(max(self.budgets))


@dataclass
class Arm:
    """One model to train: which rows, what it is, how its cell is named."""

    arm: str
    kind: str  # "distilled" | "baseline" | "full"
    budget: float
    seed: int
    rows: np.ndarray  # manifest row positions
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"full_s{self.seed}" if self.kind == "full" else f"{self.arm}_b{self.budget:.3f}_s{self.seed}"
