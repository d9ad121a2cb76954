"""`edgedistal convert-checkpoint`: the one place a .pt is fully unpickled, and only on request.

edgedistal loads every ``.pt`` with ``weights_only=True`` (docs/safety.md). A checkpoint from an
older version that stored other Python objects is refused with this command as the fix; the user
runs it knowingly (``--trust``) on a file whose origin they know.
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
@click.option("--trust", is_flag=True, help="I know where OLD came from: unpickling it may run code it contains.")
def convert_checkpoint(old: Path, new: Path, trust: bool) -> None:
    """Rewrite OLD (a .pt you trust) as -o NEW holding only tensors and plain types."""
    from edgedistal.errors import EdgedistalError
    from edgedistal.utils.io import check_output_file
    from edgedistal.utils.safeload import convert_trusted

    if not trust:
        raise EdgedistalError(f"{old}: converting unpickles it fully, which runs any code it contains",
                              "add --trust only if you know where the file came from")
    check_output_file(new, "-o/--out", replaceable=lambda p: False)
    convert_trusted(old, new)
    click.echo(f"wrote {new} (loads with weights_only=True)")
