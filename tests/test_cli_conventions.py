"""One CLI convention: every command found through the group, checked the same way.

A new command that skips the shared options (``commands/options.py``) or has no example in
its ``--help`` fails here, not in a user's terminal.
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from edgedistal.cli import COMMANDS, cli
from edgedistal.commands.options import DEVICE, DEVICE_HELP, THREADS_HELP

#: Commands that compute (train, infer, build, time): they take --threads and --device.
COMPUTE = {"pretrain", "train", "score", "evaluate", "export", "engines", "distill", "demo", "bench", "predict", "extract"}
#: Compute commands with no device to choose, and why (README "CLI conventions" says the same).
NO_DEVICE = {
    "export": "ONNX export, parity and int8 calibration run on the CPU; the graph is device-free",
    "extract": "the face detectors run on OpenCV's CPU backend",
}


def _commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    names = cli.list_commands(ctx)
    assert names == list(COMMANDS)  # nothing hidden, nothing unlisted
    return {name: cli.get_command(ctx, name) for name in names}


def _option(cmd: click.Command, flag: str) -> click.Option | None:
    return next((p for p in cmd.params if isinstance(p, click.Option) and flag in p.opts), None)


COMMAND_OBJECTS = _commands()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_help_has_an_example(name: str) -> None:
    res = CliRunner().invoke(cli, [name, "--help"])
    assert res.exit_code == 0, res.output
    assert "Examples:" in res.output
    examples = res.output.split("Examples:", 1)[1]
    assert f"edgedistal {name}" in examples  # the example runs this very command


@pytest.mark.parametrize("name", sorted(COMPUTE))
def test_compute_commands_take_threads_and_device(name: str) -> None:
    cmd = COMMAND_OBJECTS[name]
    threads = _option(cmd, "--threads")
    assert threads is not None, f"{name}: no --threads"
    assert threads.default is None and (threads.help or "").startswith(THREADS_HELP)
    device = _option(cmd, "--device")
    if name in NO_DEVICE:
        assert device is None, f"{name} is listed as device-free but has --device"
        return
    assert device is not None, f"{name}: no --device"
    assert device.type is DEVICE and device.default == "auto"
    assert (device.help or "").startswith(DEVICE_HELP)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_output_commands_accept_dash_o(name: str) -> None:
    out = _option(COMMAND_OBJECTS[name], "--out")
    assert out is not None, f"{name}: no --out"
    assert "-o" in out.opts, f"{name}: --out has no -o"


MANIFEST_READERS = [n for n, c in COMMAND_OBJECTS.items() if _option(c, "--manifest") is not None]


def test_manifest_readers_are_found() -> None:
    assert {"distill", "score", "bench", "train", "evaluate", "pretrain"} <= set(MANIFEST_READERS)


@pytest.mark.parametrize("name", MANIFEST_READERS)
def test_manifest_readers_accept_dash_m(name: str) -> None:
    """Same option, same name everywhere: a command that reads a manifest takes -m/--manifest."""
    assert "-m" in _option(COMMAND_OBJECTS[name], "--manifest").opts, f"{name}: --manifest has no -m"


def test_threads_caps_torch_and_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    """--threads is applied when parsed: torch's pool and later ORT sessions obey it."""
    import torch

    from edgedistal.utils import machine

    monkeypatch.setattr(machine, "_thread_cap", None)
    before = torch.get_num_threads()
    try:
        res = CliRunner().invoke(cli, ["score", "--threads", "1", "--manifest", "missing.parquet",
                                       "-o", "x"])
        assert res.exit_code != 0  # the manifest is missing; the option was parsed first
        assert torch.get_num_threads() == 1
        assert machine.cpu_threads() == 1 and machine.cpu_threads(3) == 3
    finally:
        torch.set_num_threads(before)
        machine.set_thread_cap(None)


@pytest.fixture
def clean_logging():
    import logging

    yield
    for name in ("", "edgedistal"):
        lg = logging.getLogger(name)
        for h in [h for h in lg.handlers if type(h).__name__ == "_EchoHandler"]:
            lg.removeHandler(h)
    logging.getLogger("edgedistal").setLevel(logging.NOTSET)


def test_library_log_reaches_the_user_once(capsys, clean_logging) -> None:
    """The group configures logging: info by default, -v adds debug, -q keeps warnings only."""
    import logging

    from edgedistal.cli import configure_logging

    lib = logging.getLogger("edgedistal.somewhere")
    configure_logging(0, False)
    configure_logging(0, False)  # twice in one process: still one handler
    lib.info("picked %s", "onnxruntime")
    lib.debug("hidden")
    lib.warning("careful")
    err = capsys.readouterr().err
    assert err.count("picked onnxruntime") == 1 and "hidden" not in err and "warning: careful" in err
    configure_logging(1, False)
    lib.debug("detail")
    assert "debug: edgedistal.somewhere: detail" in capsys.readouterr().err
    configure_logging(0, True)
    lib.info("quiet please")
    lib.error("broken")
    err = capsys.readouterr().err
    assert "quiet please" not in err and "error: broken" in err


def test_group_takes_verbose_and_quiet(clean_logging) -> None:
    import logging

    for flags, level in ((["-v"], logging.DEBUG), (["-q"], logging.WARNING), ([], logging.INFO)):
        res = CliRunner().invoke(cli, [*flags, "report", "--help"])
        assert res.exit_code == 0, res.output
        assert logging.getLogger("edgedistal").level == level


def test_no_library_print() -> None:
    """Library output goes through logging or an injected callable, never a bare print."""
    import re
    from pathlib import Path

    import edgedistal

    root = Path(edgedistal.__file__).parent
    bare = re.compile(r"(?<![\w.])print\(")
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "__init__.py" and path.parent == root:
            continue  # the package docstring's usage example prints, as user code would
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if bare.search(line) or re.search(r"=\s*print\b", line):
                offenders.append(f"{path.relative_to(root)}:{no}: {line.strip()}")
    assert not offenders, offenders


def test_a_command_that_fails_to_import_says_so(monkeypatch, capsys) -> None:
    """A broken command module is named in one error line; it does not vanish from --help."""
    import importlib

    from edgedistal import cli as cli_mod

    real = importlib.import_module

    def broken(name: str, *a, **kw):
        if name == "edgedistal.commands.bench":
            raise ModuleNotFoundError("No module named 'missing_dependency'")
        return real(name, *a, **kw)

    monkeypatch.setattr(cli_mod.importlib, "import_module", broken)
    listing = CliRunner().invoke(cli, ["--help"])
    assert "bench" in listing.output
    with pytest.raises(SystemExit) as exit_info:
        cli_mod.main(["bench", "--help"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "edgedistal.commands.bench failed to import" in err and "missing_dependency" in err
    assert "Traceback" not in err


#: The training recipe (one argument group, options.recipe_options) and the commands that train.
RECIPE = ("--backbone", "--image-size", "--lr", "--amp")


@pytest.mark.parametrize("flag", RECIPE)
def test_training_recipe_is_one_argument_group(flag: str) -> None:
    """train, distill and evaluate declare the recipe once: same type, validator and default."""
    opts = {n: _option(COMMAND_OBJECTS[n], flag) for n in ("train", "distill", "evaluate")}
    assert all(opts.values()), f"{flag} missing from {[n for n, o in opts.items() if o is None]}"
    kinds = {(type(o.type).__name__, repr(getattr(o.type, "min", None)), str(o.default)) for o in opts.values()}
    assert len(kinds) == 1, f"{flag} differs between train, distill and evaluate: {kinds}"


def test_recipe_validators_refuse_bad_values_in_every_trainer(tmp_path) -> None:
    """evaluate once took ``--lr 0`` and ``--train-batch-size 0`` (plain float/int)."""
    runner = CliRunner()
    for args in (["train", "-m", "x.parquet", "--lr", "0"], ["distill", "-m", "x.parquet", "--lr", "0"],
                 ["evaluate", "-m", "x.parquet", "-d", "x", "--lr", "0"],
                 ["evaluate", "-m", "x.parquet", "-d", "x", "--train-batch-size", "0"]):
        res = runner.invoke(cli, args)
        assert res.exit_code == 2 and ("--lr" in res.output or "--train-batch-size" in res.output), (args, res.output)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_says_what_it_does(name: str) -> None:
    """`--help` is the first thing a user reads: an option without a help line is a guess."""
    bare = [p.opts[0] for p in COMMAND_OBJECTS[name].params
            if isinstance(p, click.Option) and p.name != "help" and not (p.help or "").strip()]
    assert not bare, f"{name}: options without help: {bare}"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_missing_required_option_is_a_usage_error(name: str) -> None:
    """click ≥ 8.3 treats an explicit ``default=None`` as a value: a "required" option declared
    with it would let the command run with None (score without -o crashed in Path(None))."""
    for p in COMMAND_OBJECTS[name].params:
        if p.required:
            assert p.default is not None, f"{name} {p.opts[0]}: required with default None"


def test_score_without_out_says_it_is_missing(tmp_path) -> None:
    res = CliRunner().invoke(cli, ["score", "-m", str(tmp_path / "m.parquet"), "--checkpoint",
                                   str(tmp_path / "c.pt")])
    assert res.exit_code == 2 and "Missing option '--out'" in res.output, res.output
