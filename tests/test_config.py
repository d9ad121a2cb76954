"""`--config FILE.yaml|toml` on every command and the run_config.yaml each run leaves behind."""

from __future__ import annotations

import pandas as pd
import yaml
from cli_run import run_captured as run

from edgedistal.cli import COMMANDS, cli
from edgedistal.commands.config import RUN_CONFIG, fingerprint


def _options(path):
    return yaml.safe_load(path.read_text())


def test_every_command_takes_config():
    import click

    ctx = click.Context(cli)
    for name in COMMANDS:
        assert "config" in [p.name for p in cli.get_command(ctx, name).params], name


def test_config_round_trip_gives_the_same_run(synth_dir, tmp_path, capsys):
    first = tmp_path / "a" / "manifest.parquet"
    first.parent.mkdir()
    code, _, err = run(["ingest", str(synth_dir), "--layout", "csv", "--split", "0.6,0.2,0.2", "--split-seed", "7",
                        "-o", str(first)], capsys)
    assert code == 0, err
    saved = first.with_name(f"{first.name}.{RUN_CONFIG}")
    opts = _options(saved)
    assert opts["split"] == "0.6,0.2,0.2" and opts["split-seed"] == 7 and opts["layout"] == "csv"
    assert fingerprint(opts) in saved.read_text()  # the header names it

    # repeated from its saved config alone (elsewhere): same options, same fingerprint, same split
    second = tmp_path / "b" / "manifest.parquet"
    second.parent.mkdir()
    code, _, err = run(["ingest", "--config", str(saved), "-o", str(second)], capsys)
    assert code == 0, err
    again = _options(second.with_name(f"{second.name}.{RUN_CONFIG}"))
    assert fingerprint(again) == fingerprint(opts)
    assert {k: v for k, v in again.items() if k != "out"} == {k: v for k, v in opts.items() if k != "out"}
    a, b = pd.read_parquet(first), pd.read_parquet(second)
    assert a["split"].tolist() == b["split"].tolist()

    # a flag on the command line wins over the file, and changes the fingerprint
    toml = tmp_path / "c.toml"
    toml.write_text(f'src = "{synth_dir}"\nlayout = "csv"\nsplit = "0.6,0.2,0.2"\nsplit_seed = 7\n')
    third = tmp_path / "c" / "manifest.parquet"
    third.parent.mkdir()
    code, _, err = run(["ingest", "--config", str(toml), "--split-seed", "8", "-o", str(third)], capsys)
    assert code == 0, err
    got = _options(third.with_name(f"{third.name}.{RUN_CONFIG}"))
    assert got["split-seed"] == 8 and fingerprint(got) != fingerprint(opts)


def test_bad_config_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("image-size: 64\nno-such-option: 1\n")
    code, _, err = run(["train", "--config", str(bad)], capsys)
    assert code == 2 and "'no-such-option' is not an option of `edgedistal train`" in err and "fix:" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1,\n")
    code, _, err = run(["train", "--config", str(broken)], capsys)
    assert code == 2 and "not valid YAML" in err and "Traceback" not in err
