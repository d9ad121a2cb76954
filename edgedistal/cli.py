"""The `edgedistal` command line. Thin by design: each command parses options and calls the
library. Commands are imported lazily so `edgedistal --help` stays fast (no torch import)."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from edgedistal import __version__
from edgedistal.errors import EdgedistalError, from_os_error

#: command name → "module:function" (module under edgedistal.commands), in help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("ingest:ingest", "Read a dataset layout into a manifest (Parquet) with a summary."),
    "extract": ("extract:extract", "Sample frames from videos, detect faces, write crops + manifest."),
    "pretrain": ("pretrain:pretrain", "Train a label-free embedder (SimCLR) on a manifest's train images."),
    "train": ("train:train", "Train a detector on a manifest's train split."),
    "export": ("export:export", "Export a checkpoint to ONNX (fp32, fp16, int8 QDQ)."),
    "engines": ("engines:engines", "Build TensorRT engines (or ONNX Runtime artifacts) from export/."),
    "score": ("score:score", "Score a pool: probabilities, uncertainty and embeddings."),
    "distill": ("distill:distill", "Select a distilled subset with active learning."),
    "evaluate": ("evaluate:evaluate", "Evaluate a checkpoint, or compare distilled vs random vs full."),
    "report": ("report:report", "Render a run directory as Markdown + HTML with figures."),
    "bench": ("bench:bench", "Latency and accuracy per backend × precision × batch."),
    "predict": ("predict:predict", "Is it fake? Probabilities for images, folders or videos."),
    "demo": ("demo:demo", "Run every stage end to end on a generated dataset."),
    "convert-checkpoint": ("convert:convert_checkpoint",
                           "Rewrite an old .pt you trust as tensors + plain types (loadable safely)."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (after click's docs).

    Every command is listed; one whose module fails to import says so (naming the module and
    the import error) when it is run, instead of vanishing from ``--help``.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module, func = target.split(":")
        path = f"edgedistal.commands.{module}"
        try:
            command = getattr(importlib.import_module(path), func)
        except ImportError as exc:
            raise EdgedistalError(
                f"`edgedistal {name}` cannot start: {path} failed to import ({exc.__class__.__name__}: {exc})",
                f"install what it needs (pip install -e .) or see `python -c 'import {path}'`",
            ) from exc
        from edgedistal.commands.config import add_config_option

        return add_config_option(command)  # --config FILE and run_config.yaml, once for every command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgedistal")
@click.option("-v", "--verbose", count=True, help="Debug messages too (-vv: also other libraries').")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors from the library log.")
def cli(verbose: int, quiet: bool) -> None:
    """edgedistal: distil deepfake datasets with active learning; ship the detector to edge GPUs.

    Typical flow: ingest → (extract) → train → score → distill → evaluate → export → engines → bench
    → predict.
    """
    configure_logging(verbose, quiet)
    from edgedistal.commands.options import interrupt_hint

    interrupt_hint()  # a hint left by an earlier command in this process is not this one's


class _EchoHandler(logging.Handler):
    """Log records to stderr through click (which finds the stream a test runner swapped in)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # a closed stream must not turn a log line into a crash
            self.handleError(record)


class _Format(logging.Formatter):
    """``message`` for info, ``warning: message`` above, ``debug: logger: message`` below."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info:
            msg = f"{msg}\n{self.formatException(record.exc_info)}"
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {msg}"
        if record.levelno < logging.INFO:
            return f"debug: {record.name}: {msg}"
        return msg


def configure_logging(verbose: int = 0, quiet: bool = False) -> logging.Logger:
    """Send the library's log (``edgedistal.*``) to stderr, once per run: info by default,
    debug with ``-v`` (``-vv``: every library's), warnings only with ``-q``."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    target = logging.getLogger() if verbose >= 2 else logging.getLogger("edgedistal")
    for name in ("", "edgedistal"):  # a second run in one process (tests) replaces, not stacks
        lg = logging.getLogger(name)
        for h in [h for h in lg.handlers if isinstance(h, _EchoHandler)]:
            lg.removeHandler(h)
    handler = _EchoHandler()
    handler.setFormatter(_Format())
    target.addHandler(handler)
    target.setLevel(level)
    pkg = logging.getLogger("edgedistal")
    pkg.setLevel(level)
    if verbose < 2:  # OpenCV's own "[ERROR:0@2.4] … readHeader" lines: a bad file is reported per
        os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")  # file already (read before cv2 loads)
    return pkg


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one clear message (and the fix) instead of a traceback."""
    try:
        cli.main(args=argv, prog_name="edgedistal", standalone_mode=False)
    except EdgedistalError as exc:
        _fail(exc)
    except click.UsageError as exc:  # bad option values: one line + the fix, not click's usage block
        _fail(usage_error(exc))
    except OSError as exc:  # full disk, read-only folder...: one line naming the path
        err = from_os_error(exc)
        if err is None:
            raise
        _fail(err)
    except click.exceptions.Abort:  # Ctrl-C (click turns KeyboardInterrupt into Abort)
        from edgedistal.commands.options import interrupt_hint

        hint = interrupt_hint()
        click.echo("interrupted" + (f"; to continue: {hint}" if hint else ""), err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


def usage_error(exc: click.UsageError) -> EdgedistalError:
    """click's usage error as an EdgedistalError; the fix is the option's own hint or --help."""
    where = exc.ctx.command_path if exc.ctx is not None else "edgedistal"
    hint = getattr(exc, "hint", None) or f"see `{where} --help`"
    message = " ".join(exc.format_message().split())
    return EdgedistalError(message[:1].lower() + message[1:], hint)


def _fail(exc: EdgedistalError) -> None:
    click.echo(exc.format(), err=True)
    sys.exit(2)


if __name__ == "__main__":
    main()
