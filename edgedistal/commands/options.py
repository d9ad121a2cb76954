"""Option types shared by every command, so a bad number fails at the door the same way.

Each type rejects what would otherwise crash deep inside (a ZeroDivisionError for
``--batch-size 0``, a cv2.error for ``--image-size 0``) or silently run something else
(``--rounds 0`` running 5 rounds, ``score --device cuda`` running on the CPU).
"""

from __future__ import annotations

import math
import re
from typing import Any

import click


class BadOption(click.BadParameter):
    """A bad option value with the fix spelled out (the CLI prints ``hint`` as the fix)."""

    def __init__(self, message: str, hint: str, **kw: Any):
        super().__init__(message, **kw)
        self.hint = hint


#: At least one: sizes, steps, rounds, threads, seeds.
POSITIVE = click.IntRange(min=1)
#: Zero allowed: worker counts, patience, caps.
NON_NEGATIVE = click.IntRange(min=0)
#: Input side in pixels: smaller images collapse to nothing in a CNN's strides.
IMAGE_SIZE = click.IntRange(min=16, max=4096)


class FiniteFloat(click.ParamType):
    """A finite float (no nan/inf), optionally > ``above`` (exclusive) or ≥ ``at_least``."""

    name = "number"

    def __init__(self, above: float | None = None, at_least: float | None = None):
        self.above, self.at_least = above, at_least

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.above is not None and v <= self.above:
            self.fail(f"{value!r} must be > {self.above:g}", param, ctx)
        if self.at_least is not None and v < self.at_least:
            self.fail(f"{value!r} must be >= {self.at_least:g}", param, ctx)
        return v


POSITIVE_FLOAT = FiniteFloat(above=0)


class Amount(click.ParamType):
    """A fraction of the pool (``0.2``) or a count (``500``), kept as text for
    :func:`edgedistal.acquire.loop.resolve_count` (which tells ``1.0`` from ``1``)."""

    name = "fraction|count"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or v <= 0:
            raise BadOption(f"{value!r} is not a fraction in (0, 1] or a count >= 1",
                            "give e.g. 0.2 (a fifth of the pool) or 500 (samples)", ctx=ctx, param=param)
        if v > 1 and v != int(v):
            raise BadOption(f"{value!r}: a count must be a whole number", "give e.g. 500", ctx=ctx, param=param)
        return text


AMOUNT = Amount()

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class Device(click.ParamType):
    """``auto``, ``cpu``, ``mps`` or ``cuda[:N]`` — and the GPU asked for must exist here."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().lower()
        if not _DEVICE.match(text):
            raise BadOption(f"unknown device {value!r}", "use auto, cpu, cuda, cuda:N or mps", ctx=ctx, param=param)
        problem = _missing_device(text)
        if problem:
            raise BadOption(problem, "use --device cpu (or auto) on this machine", ctx=ctx, param=param)
        return text


def _missing_device(name: str) -> str | None:
    """Why ``name`` cannot run here (None: it can). Imports torch only for GPU names."""
    if name in ("auto", "cpu"):
        return None
    import torch

    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        return None if mps is not None and mps.is_available() else "mps: Apple MPS is not available here"
    if not torch.cuda.is_available():
        return f"{name}: CUDA is not available on this machine"
    index = int(name.split(":")[1]) if ":" in name else 0
    if index >= torch.cuda.device_count():
        return f"{name}: only {torch.cuda.device_count()} CUDA device(s) here"
    return None


DEVICE = Device()


def ray_options(shard_help: str):
    """``--ray [auto|ADDRESS]``, ``--ray-actors``, ``--ray-shard``: the same on every command that
    can run on a Ray cluster (without ``--ray`` nothing imports Ray)."""

    def deco(f):
        f = click.option("--ray-shard", "ray_shard", type=POSITIVE, default=None, help=shard_help)(f)
        f = click.option("--ray-actors", "ray_actors", type=POSITIVE, default=None,
                         help="Ray actors (default: one per cluster CPU, or per GPU when scoring on GPUs).")(f)
        return click.option(
            "--ray", "ray_address", default=None, is_flag=False, flag_value="auto", metavar="[auto|ADDRESS]",
            help="Run on Ray: `--ray` / `--ray auto` joins this machine's cluster (or starts a local one), "
                 "`--ray HOST:6379` a given one. Needs `pip install edgedistal[ray]`.")(f)

    return deco
