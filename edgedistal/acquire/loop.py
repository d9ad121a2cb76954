"""The acquisition loop: seed set, round schedule, stop rules and exact resume.

Why the care with state: a distillation over a million frames runs for hours, so the loop
writes its whole state (labelled indices in pick order, the round log, the schedule and the
learner's checkpoint) atomically after every round. Randomness is never carried over: each
round seeds a fresh generator from ``(seed, round)``, so a resumed run makes exactly the picks
an uninterrupted one would have made.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from edgedistal.acquire import uncertainty as S
from edgedistal.acquire.kernels import k_center_greedy
from edgedistal.acquire.learners import Learner, Scores, val_auc
from edgedistal.acquire.state import SelectionState, Strategy
from edgedistal.acquire.strategies import RandomSampling
from edgedistal.acquire.wrappers import with_base
from edgedistal.errors import EdgedistalError
from edgedistal.utils.io import read_json, write_json_atomic

STATE_VERSION = 1


def resolve_count(value: float | int | str, n: int, what: str) -> int:
    """A fraction of the pool (``0 < v ≤ 1`` written with a point, e.g. ``0.2``) or a count."""
    text = str(value).strip()
    try:
        v = float(text)
    except ValueError as exc:
        raise EdgedistalError(f"{what} {value!r} is not a number", f"give {what} as 0.2 (fraction) or 500 (count)") from exc
    if not math.isfinite(v) or v <= 0:
        raise EdgedistalError(f"{what} must be a positive finite number, got {value!r}", f"give {what} as 0.2 or 500")
    is_frac = (v < 1) or ("." in text and v <= 1)
    count = int(round(v * n)) if is_frac else int(v)
    if count > n:  # never cut silently: the user asked for more than there is
        raise EdgedistalError(f"{what} {value!r} is larger than the pool ({n:,} samples)",
                              f"give {what} as at most {n} or as a fraction such as 0.2")
    return max(1, count)


def derive_seed(seed: int, round_idx: int) -> int:
    """A 63-bit seed for round ``round_idx`` that depends only on (seed, round)."""
    state = np.random.SeedSequence([int(seed), int(round_idx)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def schedule(
    n_pool: int,
    seed_size: int,
    budget: int,
    *,
    batch: int | None = None,
    rounds: int | None = None,
    milestones: Sequence[int] = (),
) -> list[int]:
    """Cumulative labelled counts after each round; element 0 is the seed set.

    Round sizes follow ``batch`` (or ``rounds`` equal rounds) but every milestone below the
    budget becomes a round boundary, so its snapshot is exactly the labelled set at that time.
    """
    budget = min(budget, n_pool)
    seed_size = min(seed_size, budget)
    if batch is None:
        r = rounds if rounds and rounds > 0 else 5
        batch = max(1, math.ceil((budget - seed_size) / r))
    bounds = [seed_size, *sorted({m for m in milestones if seed_size < m < budget}), budget]
    out = [seed_size]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi <= lo:
            continue
        parts = math.ceil((hi - lo) / batch)  # equal rounds inside each milestone segment
        out.extend(lo + round((hi - lo) * (j + 1) / parts) for j in range(parts))
    return out


@dataclass
class LoopState:
    """Everything needed to continue: JSON on disk as ``state.json``."""

    fingerprint: str
    targets: list[int]
    order: list[int] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)
    finished: bool = False
    stop_reason: str = ""
    learner: dict = field(default_factory=dict)
    #: why each row was picked (pool index as text → reason), where the strategy said
    reasons: dict = field(default_factory=dict)
    #: no generator state is carried: round r uses a fresh generator seeded by derive_seed(seed, r)
    rng: dict = field(default_factory=dict)
    version: int = STATE_VERSION

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.__dict__)

    @classmethod
    def load(cls, path: Path) -> LoopState:
        try:
            d = read_json(path)
            return cls(**d)
        except (OSError, ValueError, TypeError, RecursionError) as exc:  # ValueError: bad JSON or UTF-8
            raise EdgedistalError(
                f"{path}: cannot read the distillation state ({exc.__class__.__name__})",
                "delete the output folder's state.json to start over, or run without --resume",
            ) from exc


@dataclass
class PoolInfo:
    """The pool as the loop sees it: labels are the oracle (read only for labelled rows)."""

    labels: np.ndarray
    groups: np.ndarray
    methods: np.ndarray
    val_labels: np.ndarray | None = None
    pool_labels: np.ndarray | None = None  # every row's label in a label-aware run, else None
    videos: np.ndarray | None = None  # source video per row (GroupCap counts its frames once)


def round_record(
    r: int, picks: np.ndarray, labelled: np.ndarray, pool: PoolInfo, scores: Scores | None,
    strategy: str, target: int, auc: float, seconds: float,
) -> dict:
    lab_picks = pool.labels[picks]
    ent = math.nan
    prob = math.nan
    if scores is not None and len(picks):
        ent = float(S.entropy(scores.probs[picks]).mean())
        prob = float(np.mean(scores.probs[picks]))
    before = labelled.copy()
    before[picks] = False
    groups_before = set(pool.groups[before].tolist())
    new_groups = set(pool.groups[picks].tolist()) - groups_before
    kinds = np.where(pool.methods[picks] != "", pool.methods[picks], np.where(lab_picks == 0, "real", "fake"))
    methods = pd.Series(kinds).value_counts()
    return {
        "round": r,
        "strategy": strategy,
        "picked": int(len(picks)),
        "labelled": int(labelled.sum()),
        "target": int(target),
        "mean_entropy": ent,
        "mean_prob": prob,
        "n_real": int((lab_picks == 0).sum()),
        "n_fake": int((lab_picks == 1).sum()),
        "fake_share": float(lab_picks.mean()) if len(picks) else math.nan,
        "groups_new": len(new_groups),
        "groups_covered": len(groups_before | new_groups),
        "methods": json.dumps({str(k): int(v) for k, v in methods.items()}, sort_keys=True),
        "val_auc": auc,
        "seconds": round(seconds, 3),
    }


def plateaued(aucs: Sequence[float], patience: int, min_delta: float) -> bool:
    """True when the last ``patience`` val AUCs never beat the best before them by ``min_delta``."""
    vals = [a for a in aucs if not math.isnan(a)]
    if patience <= 0 or len(vals) <= patience:
        return False
    best_before = max(vals[:-patience])
    return max(vals[-patience:]) < best_before + min_delta


def _seed_round(learner: Learner, strategy: Strategy, pool: PoolInfo, state: LoopState, labelled: np.ndarray,
                state_path: Path, seed: int, seed_strategy: str, device: str | torch.device,
                on_round: Callable[[dict, LoopState], None] | None) -> None:
    """Round 0: the seed set (uniform through the run's wrappers, k-center on the learner's
    label-free features, or the run's own strategy before any fit); ``labelled`` is updated."""
    n = len(pool.labels)
    t0 = time.perf_counter()
    k = state.targets[0]
    gen = torch.Generator().manual_seed(derive_seed(seed, 0))
    if seed_strategy == "kcenter":
        feats = torch.as_tensor(learner.seed_embeddings()).to(device)
        first = int(torch.randint(n, (1,), generator=gen))
        picks = k_center_greedy(feats, k, first=first)
    elif seed_strategy == "random":  # uniform, through the run's wrappers (balance, pairs)
        blank = SelectionState(torch.empty(n, 0), torch.full((n,), 0.5), np.zeros(n, bool), gen,
                               groups=pool.groups, pool_labels=pool.pool_labels, videos=pool.videos)
        picks = with_base(strategy, RandomSampling()).select(blank, k)
    elif seed_strategy == "strategy":  # the run's own strategy before any fit (val AUC unknown):
        reasons: dict[int, str] = {}  # a coldstart+ chain covers its label-free features
        feats = torch.as_tensor(learner.seed_embeddings()).to(device)
        blank = SelectionState(feats, torch.full((n,), 0.5, device=feats.device), np.zeros(n, bool), gen,
                               groups=pool.groups, pool_labels=pool.pool_labels, videos=pool.videos,
                               reasons=reasons)
        picks = np.asarray(strategy.select(blank, k), np.int64)
        state.reasons.update({str(i): reasons[i] for i in picks.tolist() if i in reasons})
    else:
        raise EdgedistalError(f"unknown seed strategy {seed_strategy!r}", "use random, kcenter or strategy")
    labelled[picks] = True
    state.order = [int(i) for i in picks]
    rec = round_record(0, picks, labelled, pool, None, f"seed:{seed_strategy}", k, math.nan,
                       time.perf_counter() - t0)
    state.rounds.append(rec)
    state.save(state_path)
    if on_round:
        on_round(rec, state)


def run_loop(
    learner: Learner,
    strategy: Strategy,
    pool: PoolInfo,
    targets: list[int],
    state_path: Path,
    *,
    fingerprint: str,
    seed: int = 0,
    seed_strategy: str = "random",
    patience: int = 0,
    min_delta: float = 0.002,
    device: str | torch.device = "cpu",
    resume: bool = False,
    on_round: Callable[[dict, LoopState], None] | None = None,
) -> tuple[LoopState, Scores]:
    """Run (or continue) the loop; returns the final state and the last pool scoring.

    ``on_round(record, state)`` is called after each round's state is saved (the CLI prints
    a table row; tests raise from it to simulate a crash).
    """
    n = len(pool.labels)
    state: LoopState | None = None
    if resume and state_path.exists():
        state = LoopState.load(state_path)
        if state.fingerprint != fingerprint:
            raise EdgedistalError(
                f"{state_path}: saved run used other settings or another pool",
                "resume with the same manifest and options, or drop --resume to start over",
            )
    if state is None:
        state = LoopState(fingerprint=fingerprint, targets=list(targets),
                          rng={"seed": int(seed), "round_seed": "SeedSequence([seed, round])"})
    labelled = np.zeros(n, bool)
    labelled[np.asarray(state.order, np.int64)] = True

    if not state.rounds:  # round 0: the seed set
        _seed_round(learner, strategy, pool, state, labelled, state_path, seed, seed_strategy, device, on_round)

    scores: Scores | None = None
    while not state.finished:
        r = len(state.rounds)
        if r >= len(state.targets):
            state.finished, state.stop_reason = True, "budget"
            break
        t0 = time.perf_counter()
        rseed = derive_seed(seed, r)
        scores = learner.update(labelled, r, rseed)
        auc = val_auc(scores, pool.val_labels)
        aucs = [x["val_auc"] for x in state.rounds[1:]] + [auc]
        if plateaued(aucs, patience, min_delta):
            state.rounds[-1]["val_auc_next"] = auc
            state.finished, state.stop_reason = True, f"val AUC plateau ({patience} rounds)"
            break
        k = state.targets[r] - int(labelled.sum())
        why: dict[int, str] = {}
        sel = SelectionState.build(
            scores.embeddings, scores.probs, labelled, seed=rseed, device=device,
            labels=np.where(labelled, pool.labels, -1), groups=pool.groups, mc_probs=scores.mc_probs,
            pool_labels=pool.pool_labels, videos=pool.videos, val_auc=auc, reasons=why,
        )
        picks = np.asarray(strategy.select(sel, k), np.int64)
        state.reasons.update({str(i): why[i] for i in picks.tolist() if i in why})
        if len(picks) != len(set(picks.tolist())) or labelled[picks].any():
            raise RuntimeError(f"strategy {strategy.name} returned duplicate or labelled indices")
        labelled[picks] = True
        state.order.extend(int(i) for i in picks)
        rec = round_record(r, picks, labelled, pool, scores, strategy.name, state.targets[r], auc,
                           time.perf_counter() - t0)
        state.rounds.append(rec)
        state.learner = learner.describe()
        state.rng[f"round_{r}"] = rseed
        if len(picks) < k:
            state.finished, state.stop_reason = True, "pool exhausted"
        state.save(state_path)
        if on_round:
            on_round(rec, state)
    state.save(state_path)
    return state, scores  # type: ignore[return-value]
