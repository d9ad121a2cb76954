"""The README's "your own dataset" walkthrough, run exactly as written, timed step by step.

The README block after :data:`MARKER` sets a few shell variables (``DATA=my_faces``, sizes,
threads) and then runs ``edgedistal`` commands. This script reads that block, gives the
variables the README's values (``--set NAME=VALUE`` overrides one, e.g. the data folder), runs
each command in a fresh process as a user would type it, and writes
``benchmarks/results/walkthrough_cpu.{json,md}``: per-step wall time, the machine, the exact
commands. ``tests/test_readme.py`` uses the same parser, so the README, this script and the
test cannot disagree about what the walkthrough is.

    tar -xf ../shared/datasets/yonsei-real-fake-160.tar -C /tmp
    .venv/bin/python benchmarks/walkthrough.py --set DATA=/tmp/yonsei-real-fake-160 \\
        --workdir /tmp/walkthrough
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
#: The HTML comment (invisible on GitHub) right above the walkthrough's fenced block.
MARKER = "<!-- walkthrough: tests/test_readme.py and benchmarks/walkthrough.py run this block -->"

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_ASSIGN = re.compile(r"^([A-Z][A-Z0-9_]*)=(\S*)\s*(?:#.*)?$")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def fenced_blocks(text: str) -> list[str]:
    """The bodies of every fenced code block, in order."""
    return [m.group(1) for m in _FENCE.finditer(text)]


def walkthrough_block(text: str) -> str:
    """The fenced block right after :data:`MARKER`; a README without it is an error, not a skip."""
    at = text.find(MARKER)
    if at < 0:
        raise ValueError(f"README has no walkthrough marker {MARKER!r}")
    m = _FENCE.search(text, at)
    if m is None:
        raise ValueError("no fenced block after the walkthrough marker")
    return m.group(1)


def logical_lines(block: str) -> list[str]:
    """Lines with ``\\`` continuations joined; blank lines and whole-line comments dropped."""
    out: list[str] = []
    buf = ""
    for raw in block.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line = (buf + line).strip()
        buf = ""
        if line and not line.startswith("#"):
            out.append(line)
    if buf.strip():
        out.append(buf.strip())
    return out


def expand(text: str, variables: dict[str, str]) -> str:
    """``$NAME`` / ``${NAME}`` → its value; an undefined name fails (a typo must not vanish)."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise ValueError(f"undefined variable ${name} in: {text}")
        return variables[name]

    return _VAR.sub(sub, text)


def parse_block(block: str, overrides: dict[str, str] | None = None) -> tuple[dict[str, str], list[list[str]]]:
    """A block's variables (README values, then ``overrides``) and its ``edgedistal`` commands
    as argv lists. Only assignments and ``edgedistal`` lines are allowed, so nothing the README
    shows is skipped silently."""
    overrides = dict(overrides or {})
    variables: dict[str, str] = {}
    commands: list[list[str]] = []
    for line in logical_lines(block):
        m = _ASSIGN.match(line)
        if m:
            name, value = m.group(1), expand(m.group(2), variables)
            variables[name] = overrides.pop(name, value)
            continue
        argv = shlex.split(expand(line, variables), comments=True)
        if not argv or argv[0] != "edgedistal":
            raise ValueError(f"the walkthrough block may hold only NAME=value and edgedistal lines: {line}")
        commands.append(argv)
    if overrides:
        raise ValueError(f"overrides for variables the block does not define: {sorted(overrides)}")
    return variables, commands


def edgedistal_lines(block: str) -> list[list[str]]:
    """Every ``edgedistal …`` command of any block as argv, its ``NAME=value`` lines applied;
    other shell lines (``make``, ``ray start``, python scripts) are not ours and are ignored."""
    variables: dict[str, str] = {}
    out: list[list[str]] = []
    for line in logical_lines(block):
        m = _ASSIGN.match(line)
        if m:
            variables[m.group(1)] = expand(m.group(2), variables)
        elif line.split()[0] == "edgedistal":
            out.append(shlex.split(expand(line, variables), comments=True))
    return out


# -- the timed run ------------------------------------------------------------------------------
def run(overrides: dict[str, str], workdir: Path, out: Path) -> dict[str, Any]:
    """Run the block's commands in ``workdir`` (each a fresh ``python -m edgedistal``), timing each;
    ``out``.json/.md are rewritten after every step, so a run cut short still says how far it got."""
    from edgedistal.utils.io import write_json_atomic, write_text_atomic
    from edgedistal.utils.machine import machine_summary

    text = README.read_text()
    variables, commands = parse_block(walkthrough_block(text), overrides)
    if workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"{workdir}: not empty; pass a new --workdir (a first run starts from nothing)")
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "EDGEDISTAL_NO_PROGRESS": "1",
           "EDGEDISTAL_CACHE": str(workdir / ".cache")}  # cold: no image decoded before, as for a new user
    load_start = round(os.getloadavg()[0], 2)
    steps: list[dict[str, Any]] = []

    def doc() -> dict[str, Any]:
        return {
            "benchmark": "walkthrough",
            "complete": len(steps) == len(commands) and all(s["rc"] == 0 for s in steps),
            "steps_done": f"{len(steps)} of {len(commands)}",
            "readme_block": walkthrough_block(text),
            "variables": variables,
            "steps": steps,
            "total_s": round(sum(s["wall_s"] for s in steps), 1),
            "total_cpu_s": round(sum(s["cpu_s"] for s in steps), 1),
            "machine": machine_summary(device="cpu", nice=os.nice(0), load_avg_1min_start=load_start,
                                       threads=f"--threads {variables.get('THREADS', '(none)')} on every compute step",
                                       note=_load_note(os.nice(0), load_start)),
        }

    def save() -> dict[str, Any]:
        d = doc()
        write_json_atomic(out.with_suffix(".json"), d)
        write_text_atomic(out.with_suffix(".md"), markdown(d))
        return d

    for argv in commands:
        t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, "-m", "edgedistal", *argv[1:]], cwd=workdir, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        tail = (proc.stdout.strip().splitlines() + proc.stderr.strip().splitlines())[-12:]
        steps.append({"step": argv[1], "command": shlex.join(argv), "wall_s": round(wall, 1),
                      "cpu_s": round(cpu, 1), "rc": proc.returncode, "output_tail": tail})
        print(f"{argv[1]:<10} {wall:7.1f} s wall {cpu:7.1f} s CPU  rc {proc.returncode}", flush=True)
        save()
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
            raise SystemExit(f"step `{shlex.join(argv)}` failed with rc {proc.returncode}")
    return save()


def _load_note(nice: int, load_start: float) -> str:
    """Say how far the wall times can be trusted: by this run's priority and the load it met."""
    if nice > 0:
        return (f"run at nice {nice} while other CPU jobs had priority, so every wall time here is an "
                "upper bound")
    if load_start > 1.0:
        return (f"run at nice {nice}: other jobs shared the cores (at lower priority), so wall times "
                "are slightly pessimistic")
    return f"run at nice {nice} on a quiet machine"


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "# README walkthrough, timed (`benchmarks/walkthrough.py`)",
        "",
        *([] if doc["complete"] else [f"**Incomplete run: {doc['steps_done']} steps finished.**", ""]),
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, torch {m.get('torch', '?')}; "
        f"nice {m['nice']}, 1-min load {m['load_avg_1min_start']} at the start, {m['load_avg_1min']} at the end. {m['note']}. Threads: {m['threads']}.",
        "",
        "Variables: " + ", ".join(f"`{k}={v}`" for k, v in doc["variables"].items()),
        "",
        "Wall time is what the step took here; CPU time is what it consumed (user + system, all its "
        "threads), the better guide when the machine was shared.",
        "",
        "| step | wall time (s) | CPU time (s) | command |",
        "|---|---|---|---|",
    ]
    lines += [f"| {s['step']} | {s['wall_s']:.1f} | {s['cpu_s']:.1f} | `{s['command']}` |" for s in doc["steps"]]
    lines += [f"| **total** | **{doc['total_s']:.1f}** | **{doc['total_cpu_s']:.1f}** | |", ""]
    for s in doc["steps"]:
        lines += [f"### {s['step']} (last lines)", "", "```", *s["output_tail"], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="Override one of the block's variables (e.g. DATA=/tmp/yonsei-real-fake-160).")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/edgedistal_walkthrough"),
                    help="Where the commands run (their relative paths land here).")
    ap.add_argument("--out", type=Path, default=RESULTS / "walkthrough_cpu", help="Writes OUT.json and OUT.md.")
    args = ap.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    doc = run(overrides, args.workdir, args.out)
    print(f"wrote {args.out.with_suffix('.json')} and .md (total {doc['total_s']} s)")
    return doc


if __name__ == "__main__":
    main()
