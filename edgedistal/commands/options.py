"""Options shared by every command, defined once so the same thing has the same name,
default and help everywhere (the README's "CLI conventions").

The types reject what would otherwise crash deep inside (a ZeroDivisionError for
``--batch-size 0``, a cv2.error for ``--image-size 0``) or silently run something else
(``--rounds 0`` running 5 rounds, ``score --device cuda`` running on the CPU). The decorators
(:func:`threads_option`, :func:`device_option`, :func:`out_option`) and :func:`examples` give
every command the same ``--threads``, ``--device``, ``-o/--out`` and ``Examples:`` epilog.
"""

from __future__ import annotations

import functools
import math
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


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
#: One default input side for every command that trains (train, distill, evaluate): a detector
#: trained by one and evaluated by another sees the same images.
DEFAULT_IMAGE_SIZE = 128
#: distill's default snapshots = evaluate's default budgets, so the two defaults work together.
DEFAULT_BUDGETS = "0.01,0.02,0.05,0.1,0.2"
#: The strategy the DFDC evidence recommends today (README, docs/results.md): plain balanced
#: sampling, which trains no proxy.
DEFAULT_STRATEGY = "balanced+random"


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


# -- shared option decorators ----------------------------------------------------------------
THREADS_HELP = ("CPU threads: caps torch, OpenCV and every ONNX Runtime session of this run "
                "(default: the cores this process may use).")
DEVICE_HELP = "auto (CUDA, else Apple MPS, else CPU), cpu, cuda, cuda:N or mps."


def _apply_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """Apply ``--threads`` as soon as it is parsed, so every stage of the command obeys it."""
    if value:
        from edgedistal.utils.machine import set_thread_cap

        set_thread_cap(value)
    return value


def threads_option(more: str = "") -> Callable[[F], F]:
    """``--threads N`` (default: no cap); ``more`` adds what it also means for this command."""
    return click.option("--threads", type=POSITIVE, default=None, callback=_apply_threads,
                        help=f"{THREADS_HELP} {more}".strip())


def device_option(more: str = "") -> Callable[[F], F]:
    """``--device`` (default ``auto``), validated: a GPU that is not here fails at the door."""
    return click.option("--device", type=DEVICE, default="auto", show_default=True,
                        help=f"{DEVICE_HELP} {more}".strip())


def out_option(dest: str = "out", *, help: str, default: str | Path | None = None, required: bool = False,
               file_okay: bool = True, dir_okay: bool = True) -> Callable[[F], F]:
    """``-o/--out`` where a command writes its output (``dest`` keeps each command's parameter name).
    No ``default=None`` is passed: click ≥ 8.3 takes an explicit None as a value, so a required
    ``--out`` left out would reach the command as None instead of a usage error."""
    extra = {} if default is None else {"default": default, "show_default": True}
    return click.option("--out", "-o", dest, type=click.Path(path_type=Path, file_okay=file_okay, dir_okay=dir_okay),
                        required=required, help=help, **extra)


def examples(text: str) -> str:
    """An ``Examples:`` epilog that click prints as written (``\\b`` stops its rewrapping)."""
    body = textwrap.indent(textwrap.dedent(text).strip("\n"), "  ")
    return f"\n\b\nExamples:\n{body}\n"


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


# -- the detector training recipe: one argument group for train, distill and evaluate ----------
AMP = click.Choice(["auto", "bf16", "fp16", "off"])
AUGMENT = click.Choice(["none", "light", "standard"])
#: TrainConfig's name for a recipe option where the two differ.
RECIPE_FIELD = {"steps": "max_steps", "train_batch_size": "batch_size"}
INIT_HELP = "Start the backbone from this embedder (`edgedistal pretrain`'s embedder.pt; same --backbone)."


def recipe_options(*, epochs: float | None = 10.0, steps: bool = True, augment: str | None = "standard",
                   init: str | None = INIT_HELP, batch_flag: str = "--batch-size", tag: str = "",
                   amp_help: str = "") -> Callable[[F], F]:
    """The training-recipe options (Polygraphy-style argument group): declared once, with one
    name, type and validator each, and handed to the command as ``recipe``, a dict of
    :class:`~edgedistal.models.train.TrainConfig` fields (only the options given a value).

    ``epochs=None`` / ``steps=False`` / ``augment=None`` / ``init=None`` leave that option out
    (evaluate's steps and epochs belong to its protocol; distill's learner does not augment);
    ``batch_flag`` renames the batch size where ``--batch-size`` means inference
    (``evaluate --train-batch-size``); ``tag`` prefixes each help (``[--distilled]``)."""
    pre = f"{tag} " if tag else ""
    opts = [
        click.option("--backbone", default="resnet18", show_default=True, help=f"{pre}Any timm model name."),
        click.option("--image-size", type=IMAGE_SIZE, default=DEFAULT_IMAGE_SIZE, show_default=True,
                     help=f"{pre}Input side in pixels."),
    ]
    if steps:
        opts.append(click.option("--steps", type=POSITIVE, default=None,
                                 help=f"{pre}Optimizer steps (wins over --epochs)."))
    if epochs is not None:
        opts.append(click.option("--epochs", type=POSITIVE_FLOAT, default=epochs, show_default=True,
                                 help=f"{pre}Passes over the training rows."))
    opts += [
        click.option(batch_flag, type=POSITIVE, default=64, show_default=True,
                     help=f"{pre}Training batch size."),
        click.option("--lr", type=POSITIVE_FLOAT, default=2e-3, show_default=True, help=f"{pre}Peak learning rate."),
    ]
    if augment is not None:
        opts.append(click.option("--augment", type=AUGMENT, default=augment, show_default=True,
                                 help=f"{pre}Training augmentation."))
    opts.append(click.option("--amp", type=AMP, default="auto", show_default=True,
                             help=f"{pre}{amp_help or 'Precision: auto picks bf16 only where this CPU/GPU runs it fast.'}"))
    if init:
        opts.append(click.option("--init", "init", default=None, type=click.Path(dir_okay=False), help=f"{pre}{init}"))

    def deco(f: F) -> F:
        names: list[str] = []  # the parameter names these options get (run_config.yaml keeps them)

        @functools.wraps(f)
        def wrapper(*args: Any, **kw: Any) -> Any:
            recipe = {RECIPE_FIELD.get(k, k): kw.pop(k) for k in names}
            return f(*args, recipe={k: v for k, v in recipe.items() if v is not None}, **kw)

        for opt in reversed(opts):
            before = len(getattr(wrapper, "__click_params__", []))
            wrapper = opt(wrapper)
            names.extend(p.name for p in wrapper.__click_params__[before:])  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return deco


# -- Ctrl-C: what to type next ----------------------------------------------------------------
_ON_INTERRUPT: list[str] = []


def on_interrupt(hint: str) -> None:
    """Say how to continue if the user presses Ctrl-C from here on (``cli.main`` prints it)."""
    _ON_INTERRUPT[:] = [hint]


def interrupt_hint() -> str | None:
    """The hint the running command registered (None: it registered none), cleared once read."""
    hint = _ON_INTERRUPT[0] if _ON_INTERRUPT else None
    _ON_INTERRUPT.clear()
    return hint

