"""How results look in a terminal: aligned rich tables with 3–4 significant digits, and the
one-line warnings every command prints the same way. Display only: no computation here."""

from __future__ import annotations

import math
from typing import Any

import click

#: Metric columns of a detector's table, in reading order.
METRIC_COLUMNS = (("n", "n"), ("auc", "AUC"), ("ap", "AP"), ("eer", "EER"), ("acc", "acc"),
                  ("balanced_acc", "bal. acc"), ("log_loss", "log loss"))


def num(value: Any, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits (integers as they are, NaN/None as –)."""
    if value is None:
        return "–"
    if isinstance(value, bool) or isinstance(value, int):
        return f"{value:,}" if not isinstance(value, bool) else str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "–"
    if v != 0 and (abs(v) >= 10 ** digits or abs(v) < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}" if abs(v) >= 1 else f"{v:.{digits - 1}f}"


def console():
    from rich.console import Console

    return Console(soft_wrap=False)


def metrics_table(metrics: dict[str, dict], title: str | None = None):
    """A rich table: one row per level (frame, video), one column per metric."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("level")
    for _, head in METRIC_COLUMNS:
        table.add_column(head, justify="right")
    for level, m in metrics.items():
        if isinstance(m, dict) and "n" in m:
            table.add_row(level, *(num(m.get(k)) for k, _ in METRIC_COLUMNS))
    return table


def print_metrics(metrics: dict[str, dict], title: str | None = None) -> None:
    """Print ``compute_metrics`` output as a table, then its notes."""
    out = console()
    out.print(metrics_table(metrics, title))
    for level, m in metrics.items():
        if isinstance(m, dict) and m.get("note"):
            out.print(f"  note ({level}): {m['note']}", highlight=False)


def warn(line: str) -> None:
    """A ``warning:`` line on stderr, in yellow on a terminal."""
    click.echo(click.style(f"warning: {line}", fg="yellow"), err=True)


#: Rows of per-file results printed by default: about a screenful.
SCREENFUL = 20


def prediction_summary(files) -> dict[str, int]:
    """Counts of a ``predict`` result: files, FAKE, real, no face, failed."""
    v = files["verdict"]
    return {"files": len(files), "fake": int((v == "FAKE").sum()), "real": int((v == "real").sum()),
            "no_face": int((v == "no face").sum()), "failed": int((files["error"].astype(str) != "").sum())}


def one_class_warning(files, threshold: float) -> str | None:
    """When every scored file got the same verdict: the probabilities' range, and what to check
    (a folder of one class is fine; a detector at chance also calls everything one class)."""
    scored = files[files["verdict"].isin(["FAKE", "real"])]
    if len(scored) < 10 or scored["verdict"].nunique() > 1:
        return None
    p = scored["prob_fake"].astype(float)
    return (f"all {len(scored)} scored files are {scored['verdict'].iloc[0]!r} (p(fake) {p.min():.3f}–{p.max():.3f}, "
            f"threshold {threshold:g}). Right for a folder of one class; otherwise the detector may be at "
            "chance: check the test AUC in its metrics.json (train/evaluate warn when it is).")


def print_predictions(files, title: str, show: int | None, threshold: float) -> None:
    """A summary line, then at most ``show`` rows (None: all) as a table, then a one-class warning."""
    from rich.table import Table

    out = console()
    s = prediction_summary(files)
    extra = "".join(f", {s[k]} {k.replace('_', ' ')}" for k in ("no_face", "failed") if s[k])
    out.print(f"{s['files']} files: [red]{s['fake']} fake[/red], [green]{s['real']} real[/green]{extra}",
              highlight=False)
    rows = files if show is None else files.head(show)
    if len(rows):
        table = Table(title=title, title_justify="left")
        # whole paths, wrapped: the file is the point; a long error wraps too instead of squeezing
        # the file column to nothing in an 80-column terminal
        table.add_column("file", overflow="fold", min_width=16, ratio=3)
        for col, just in (("media", "left"), ("faces/frames", "right"), ("p(fake)", "right"), ("max p", "right")):
            table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
        table.add_column("verdict", overflow="fold", min_width=8, ratio=2)
        for r in rows.itertuples():
            verdict = r.verdict if not r.error else f"error: {r.error}"
            style = {"FAKE": "red", "real": "green"}.get(r.verdict, "yellow")
            table.add_row(r.file, r.media, f"{r.faces}/{r.frames}", num(r.prob_fake, 4), num(r.prob_max, 4),
                          f"[{style}]{verdict}[/{style}]")
        out.print(table)
    if len(rows) < len(files):
        out.print(f"… {len(files) - len(rows)} more rows not shown (--all, or --show N; every row is in --out)",
                  highlight=False)
    w = one_class_warning(files, threshold)
    if w:
        warn(w)
