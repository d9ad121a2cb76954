"""The README's commands are checked against the real CLI, so the README cannot drift from it.

(a) every ``edgedistal …`` line of every fenced block parses with the real click commands
(unknown options, bad choices and bad numbers fail; paths are not checked: the README uses
placeholders such as ``M`` and ``C``); (b) the "your own dataset" walkthrough block runs end to
end on a generated real/fake folder, with its variables set to tiny sizes and the commands
exactly as the README writes them. Both read the README through ``benchmarks/walkthrough.py``,
the parser the timed run uses. (c) the README's other promises of #17: the license, the Python
API example, the demo's ``--threads``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import click
import cv2
import pytest

from edgedistal.cli import cli, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
#: The Python API moved out of the README (#25); its example is still run from there.
API_DOC = (ROOT / "docs" / "api.md").read_text()

_spec = importlib.util.spec_from_file_location("walkthrough", ROOT / "benchmarks" / "walkthrough.py")
walkthrough = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(walkthrough)

#: Global options of the group that may precede a command.
GLOBAL = {"-v", "-vv", "-q", "--verbose", "--quiet"}
#: README lines that are not meant to parse, with the reason. Keep it tiny.
SKIP: dict[str, str] = {}


def _readme_commands() -> list[list[str]]:
    out = []
    for block in walkthrough.fenced_blocks(README):
        out += [argv for argv in walkthrough.edgedistal_lines(block) if " ".join(argv) not in SKIP]
    return out


COMMANDS = _readme_commands()


def test_readme_has_commands_of_every_kind() -> None:
    """The extractor finds the README's command lines (an empty list would pass vacuously)."""
    names = {argv[1] for argv in COMMANDS}
    assert {"ingest", "distill", "evaluate", "train", "export", "predict", "score", "bench"} <= names
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a)[:60] for a in COMMANDS])
def test_readme_command_parses(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each line goes through the command's own click parser (options, choices, ranges, types)."""
    import torch

    from edgedistal.utils import machine

    monkeypatch.setattr(click.Path, "convert", lambda self, value, param, ctx: value)  # placeholders
    monkeypatch.setattr(machine, "_thread_cap", None)  # --threads applies when parsed: undo it after
    threads = torch.get_num_threads()
    args = argv[1:]
    while args and args[0] in GLOBAL:
        args = args[1:]
    assert args, f"no command in {argv}"
    root = click.Context(cli, info_name="edgedistal")
    cmd = cli.get_command(root, args[0])
    assert cmd is not None, f"README names an unknown command: {' '.join(argv)}"
    try:
        with cmd.make_context(args[0], list(args[1:]), parent=root, resilient_parsing=False):
            pass
    except click.UsageError as exc:  # BadParameter, NoSuchOption, MissingParameter, …
        pytest.fail(f"README line does not parse: {' '.join(argv)}\n  {exc.format_message()}")
    finally:
        torch.set_num_threads(threads)


def test_a_broken_line_would_fail() -> None:
    """The parse check has teeth: an unknown option and a bad choice are caught."""
    root = click.Context(cli, info_name="edgedistal")
    distill = cli.get_command(root, "distill")
    with pytest.raises(click.NoSuchOption):
        distill.make_context("distill", ["--manifest", "m.parquet", "--no-such-option"], parent=root)
    with pytest.raises(click.BadParameter):
        distill.make_context("distill", ["--manifest", "m.parquet", "--mode", "nope"], parent=root)


# -- (b) the walkthrough, run ---------------------------------------------------------------------
#: Tiny sizes for the test; the README's own values are what benchmarks/walkthrough.py times.
TINY = {"SIZE": "32", "STEPS": "4", "SEEDS": "2", "EPOCHS": "1", "THREADS": "1"}


def _real_fake_folder(root: Path) -> Path:
    """A small my_faces/{real,fake}/*.jpg folder of generated faces (10 identities, 80 images)."""
    from edgedistal.data.synth import SynthConfig, generate

    images, table = generate(SynthConfig(n_groups=10, fakes_per_real=1, frames_per_video=4, size=32, seed=5))
    for im, row in zip(images, table.itertuples(index=False), strict=True):
        path = root / ("fake" if row.label else "real") / f"{row.video}_{row.frame:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), im)
    return root


def test_walkthrough_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The README block as written, tiny sizes, in this process; any failing step fails the test."""
    import pandas as pd
    import torch

    from edgedistal.utils import machine

    monkeypatch.setattr(machine, "_thread_cap", None)
    threads = torch.get_num_threads()
    data = _real_fake_folder(tmp_path / "my_faces")
    monkeypatch.chdir(tmp_path)
    variables, commands = walkthrough.parse_block(walkthrough.walkthrough_block(README),
                                                  {**TINY, "DATA": str(data), "WORK": "work"})
    steps = [argv[1] for argv in commands]
    assert steps == ["ingest", "distill", "evaluate", "train", "export", "predict"]
    distill = commands[1]
    evaluate = commands[2]
    milestones = distill[distill.index("--milestones") + 1]
    assert evaluate[evaluate.index("--budgets") + 1] == milestones  # evaluate what was distilled
    assert max(map(float, milestones.split(","))) == float(distill[distill.index("--budget") + 1])
    try:
        for argv in commands:
            try:
                main(argv[1:])
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0)
            out = capsys.readouterr()
            assert code == 0, f"README step failed: {' '.join(argv)}\n{out.out[-2000:]}\n{out.err[-2000:]}"
    finally:
        torch.set_num_threads(threads)
    work = tmp_path / "work"
    assert (work / "eval" / "report.html").is_file() and (work / "export" / "model_int8.onnx").is_file()
    pred = pd.read_csv(work / "predictions.csv")
    assert len(pred) == len(list((data / "fake").glob("*.jpg")))


# -- (c) the rest of #17's README items ----------------------------------------------------------
def test_license_matches_pyproject() -> None:
    """pyproject's license (read with a regex: tomllib needs 3.11, the project supports 3.10)."""
    m = re.search(r'^license\s*=\s*(?:\{\s*text\s*=\s*)?"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert m, "pyproject.toml declares no license"
    declared = m.group(1)
    head = (ROOT / "LICENSE").read_text()[:300]
    assert declared == "Apache-2.0" and "Apache License" in head and "Version 2.0" in head
    assert f"{declared} (see [LICENSE](LICENSE))" in README


def test_readme_documents_the_python_api() -> None:
    import edgedistal

    section = API_DOC.split("## Python API", 1)
    assert len(section) == 2, "docs/api.md has no '## Python API' section"
    text = section[1].split("\n## ", 1)[0]
    missing = [name for name in edgedistal.__all__ if name != "__version__" and name not in text]
    assert not missing, f"docs/api.md's Python API section does not name {missing}"
    code = walkthrough.fenced_blocks(text)
    assert code and "import edgedistal as ed" in code[0]
    compile(code[0], "README Python API example", "exec")  # valid Python
    used = set(re.findall(r"\bed\.([A-Za-z_]+)", code[0]))
    assert used and used <= set(edgedistal.__all__), f"the example uses names edgedistal does not export: {used}"


def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The API example, as written, on a generated my_faces/ folder (only the step count shrinks)."""
    text = API_DOC.split("## Python API", 1)[1].split("\n## ", 1)[0]
    code = walkthrough.fenced_blocks(text)[0]
    _real_fake_folder(tmp_path / "my_faces")
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("max_steps=60", "max_steps=4"), "README Python API example", "exec"), {})
    out = capsys.readouterr().out
    assert "picked ->" in out and "missing.parquet" in out and "| fix:" in out
    assert (tmp_path / "work" / "d_hybrid" / "distilled.parquet").exists()


def test_demo_takes_threads() -> None:
    demo = cli.get_command(click.Context(cli), "demo")
    assert any("--threads" in p.opts for p in demo.params)
    assert any(argv[1] == "demo" and "--threads" in argv for argv in COMMANDS), "README shows no demo --threads"


def test_readme_and_docs_link_only_to_files_a_clone_has() -> None:
    """Every relative link of the README and docs/ points at a file in the repository (the three
    docs other #25 work adds are named in the README's "More" list and checked once they land)."""
    pending = {"docs/evaluation.md", "docs/embedder.md", "docs/safety.md"}
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (doc.parent / target).resolve()
            rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
            if not path.exists() and rel not in pending:
                broken.append(f"{doc.relative_to(ROOT)} → {target}")
    assert not broken, broken
    assert len(README.splitlines()) <= 200, "the README is what a newcomer reads: keep it short"
