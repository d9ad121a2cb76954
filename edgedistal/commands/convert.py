"""`edgedistal convert-checkpoint`: rewrite an older checkpoint as tensors and plain types.

edgedistal loads every ``.pt`` with ``weights_only=True`` (docs/safety.md). A checkpoint from an
older version that stored numpy objects is refused with this command as the fix. The conversion
reads those numpy types through torch's allow-list (still ``weights_only=True``) and refuses a
file needing anything else, so nothing from the file can run; ``--trust`` confirms the rewrite.
"""

from __future__ import annotations

from pathlib import Path

import click

from edgedistal.commands.options import examples, out_option

EXAMPLES = examples('''
# an old detector.pt you trained yourself → one every command loads safely
edgedistal convert-checkpoint runs/old/detector.pt -o runs/old/detector.safe.pt --trust
''')


@click.command(epilog=EXAMPLES)
@click.argument("old", type=click.Path(path_type=Path))
@out_option("new", help="NEW: where the converted .pt goes (a new file).", required=True, dir_okay=False)
@click.option("--trust", is_flag=True, help="I know where OLD came from and want it rewritten (its numpy objects become plain numbers).")
def convert_checkpoint(old: Path, new: Path, trust: bool) -> None:
    """Rewrite OLD (an older edgedistal .pt) as -o NEW holding only tensors and plain types."""
    from edgedistal.errors import EdgedistalError
    from edgedistal.utils.io import check_output_file
    from edgedistal.utils.safeload import convert_trusted

    if not trust:
        raise EdgedistalError(f"{old}: converting rewrites a checkpoint from elsewhere as one every command loads",
                              "add --trust if you know where the file came from")
    check_output_file(new, "-o/--out", replaceable=lambda p: False)
    convert_trusted(old, new)
    click.echo(f"wrote {new} (loads with weights_only=True)")
