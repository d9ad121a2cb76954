"""Run the CLI in-process as a user would (one place, shared by the CLI tests)."""

from __future__ import annotations

from edgedistal.cli import main


def exit_code(*args: object) -> int:
    """Call ``edgedistal.cli.main`` with ``args``; return its exit code."""
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def run_captured(argv: list, capsys) -> tuple[int, str, str]:
    """Call ``edgedistal.cli.main``; return (exit code, stdout, stderr) from ``capsys``."""
    code = exit_code(*argv)
    out = capsys.readouterr()
    return code, out.out, out.err
