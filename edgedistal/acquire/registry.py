"""Strategies by name: ``get_strategy("balanced+groupspread+hybrid", ...)`` builds the chain;
:data:`STRATEGIES` and :data:`WRAPPERS` list what the CLI accepts."""

from __future__ import annotations

from dataclasses import dataclass

from edgedistal.acquire.state import Strategy
from edgedistal.acquire.strategies import (
    Badge,
    ClusterMargin,
    Hybrid,
    KCenterGreedy,
    RandomSampling,
    TopUncertainty,
    TypiClust,
)
from edgedistal.acquire.wrappers import Balanced, GroupSpread, Paired


def _lazy(module: str, cls: str):
    """A factory for a strategy defined in another ``acquire`` module (imported on first use,
    so this module keeps no import cycle with the modules that build on its kernels)."""

    def make(**kw: object) -> Strategy:
        import importlib

        return getattr(importlib.import_module(f"edgedistal.acquire.{module}"), cls)(**kw)

    return make


_REGISTRY = {
    "random": RandomSampling,
    "uncertainty": TopUncertainty,
    "least_confidence": lambda **kw: TopUncertainty(score="least_confidence", name="least_confidence", **kw),
    "margin": lambda **kw: TopUncertainty(score="margin", name="margin", **kw),
    "entropy": lambda **kw: TopUncertainty(score="entropy", name="entropy", **kw),
    "bald": lambda **kw: TopUncertainty(score="bald", name="bald", **kw),
    "kcenter": KCenterGreedy,
    "coreset": KCenterGreedy,
    "badge": Badge,
    "typiclust": TypiClust,
    "cluster_margin": ClusterMargin,
    "hybrid": Hybrid,
    "probcover": _lazy("coldstart", "ProbCover"),
    # difficulty strategies: training-dynamics scores in labelled mode, entropy otherwise
    "ccs": _lazy("difficulty", "CCS"),
    "easy2hard": _lazy("difficulty", "EasyToHard"),
    "d2": _lazy("difficulty", "D2Pruning"),
    # peers: Lightly's selection engine (optional lightly-mundig), balancing by itself
    "mundig": _lazy("peers", "Mundig"),
    "mundig_div": lambda **kw: _lazy("peers", "Mundig")(diversity=1.0, name="mundig_div", **kw),
}
STRATEGIES = tuple(_REGISTRY)
WRAPPERS = ("balanced", "groupspread", "groupcap", "paired", "coldstart")
#: Keyword arguments that configure a wrapper rather than the base strategy, by wrapper
#: (``real_fraction`` alone implies balanced).
WRAPPER_KW_OF = {"balanced": ("real_fraction",), "groupcap": ("max_per_group", "max_per_video"),
                 "coldstart": ("cold", "threshold")}


@dataclass(frozen=True)
class StrategySpec:
    """A strategy string parsed once: ``"balanced+groupcap+ccs"`` → wrappers
    ``("balanced", "groupcap")`` and base ``"ccs"``. Every reader of a strategy name asks this
    instead of splitting the string again."""

    base: str
    wrappers: tuple[str, ...] = ()

    @classmethod
    def parse(cls, name: str) -> StrategySpec:
        parts = str(name).lower().replace("-", "_").split("+")
        base, wrappers = parts[-1], tuple(parts[:-1])
        if base not in _REGISTRY or any(w not in WRAPPERS for w in wrappers):
            from edgedistal.errors import EdgedistalError

            raise EdgedistalError(
                f"unknown strategy {name!r}",
                f"choose one of {', '.join(STRATEGIES)}, optionally prefixed by {'+, '.join(WRAPPERS)}+",
            )
        return cls(base, wrappers)

    def has(self, wrapper: str) -> bool:
        return wrapper in self.wrappers

    @property
    def name(self) -> str:
        return "+".join((*self.wrappers, self.base))


def _wrapper_settings(spec: StrategySpec, kw: dict[str, object]) -> dict[str, object]:
    """Pop the wrapper settings out of ``kw``; a setting whose wrapper is not in the chain is
    refused (it used to be dropped silently). ``threshold`` without coldstart stays the base
    strategy's own (Lightly's engine has one)."""
    out: dict[str, object] = {}
    for wrapper, keys in WRAPPER_KW_OF.items():
        for key in keys:
            if key not in kw or kw[key] is None:
                continue
            if wrapper == "balanced" or spec.has(wrapper):
                out[key] = kw.pop(key)
            elif key != "threshold":
                from edgedistal.errors import EdgedistalError

                raise EdgedistalError(f"--param {key} configures the {wrapper}+ wrapper, which {spec.name!r} does "
                                      "not have", f"use --strategy {wrapper}+{spec.name}, or drop {key}")
    return out


def get_strategy(name: str, *, balanced: bool = False, group_spread: int = 0, **kw: object) -> Strategy:
    """Build a strategy by name; ``balanced`` / ``group_spread > 0`` add the wrappers.

    ``name`` may also carry wrappers as prefixes, e.g. ``"balanced+groupspread+hybrid"`` or
    ``"paired+hybrid"`` (pairing is outermost: it completes whatever the others pick).
    Wrapper settings ride in ``kw``: ``real_fraction`` (balanced; given alone it implies
    balanced), ``max_per_group`` / ``max_per_video`` (groupcap), ``cold`` (the cold-start
    strategy's name, default typiclust) and ``threshold`` (coldstart's val-AUC switch).
    Nesting, inside out: coldstart, groupcap, balanced, groupspread, paired.
    """
    spec = StrategySpec.parse(name)
    base = spec.base
    kw = dict(kw)
    wkw = _wrapper_settings(spec, kw)
    try:
        strat: Strategy = _REGISTRY[base](**kw)
    except TypeError as exc:  # --param notakey=5, or a value of the wrong kind
        import inspect

        from edgedistal.errors import EdgedistalError

        accepted = [p for p in inspect.signature(_REGISTRY[base]).parameters if p not in ("self", "args", "kwargs")]
        raise EdgedistalError(
            f"strategy {base!r} does not take {', '.join(f'{k}={v!r}' for k, v in kw.items())} ({exc})",
            f"its --param keys are: {', '.join(accepted) or 'none'}",
        ) from exc
    if spec.has("coldstart"):
        from edgedistal.acquire.coldstart import ColdStart

        cold = get_strategy(str(wkw.get("cold", "typiclust")))
        strat = ColdStart(strat, cold, **({"threshold": float(wkw["threshold"])} if "threshold" in wkw else {}))
    if spec.has("groupcap"):  # inside balanced: exact class quotas, caps still span both
        from edgedistal.acquire.groups import GroupCap  # classes (counted over the picks so far)

        caps = {key: int(wkw[key]) for key in ("max_per_group", "max_per_video") if key in wkw}
        strat = GroupCap(strat, **caps)
    if spec.has("balanced") or balanced or "real_fraction" in wkw:
        strat = Balanced(strat, real_fraction=float(wkw.get("real_fraction", 0.5)))
    if spec.has("groupspread") or group_spread > 0:  # outermost: the cap spans both classes
        strat = GroupSpread(strat, max(1, group_spread))
    if spec.has("paired"):
        strat = Paired(strat)
    return strat
