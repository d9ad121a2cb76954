"""``--config FILE.yaml|toml`` on every command, and the resolved config each run leaves beside
its outputs (``run_config.yaml``) so that the run can be repeated from its folder.

Implemented once, for all commands, through click's ``default_map``: the file's keys are the
option names (``image-size`` or ``image_size``), its values become the defaults, and flags given
on the command line still win. Why not a config framework (hydra, ...): click already resolves
defaults; this adds a file reader and a writer, nothing else. YAML is read with ``safe_load``
(no objects built from the file); TOML with the standard library (``tomli`` on Python 3.10).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import click

from edgedistal.errors import EdgedistalError

#: What a run leaves beside its outputs.
RUN_CONFIG = "run_config.yaml"
#: Options that say how to treat an existing output, not what the run computes: never saved.
NOT_SAVED = ("config", "resume", "overwrite")
#: Options that say where or how fast, not what: left out of the fingerprint.
NOT_FINGERPRINTED = ("out", "out_dir", "threads", "device", "verbose", "quiet")


def read_config(path: Path) -> dict[str, Any]:
    """The mapping in a .yaml/.yml/.toml file; one-line errors for a missing or broken file."""
    if not path.is_file():
        raise EdgedistalError(f"{path}: config file not found", "check the --config path")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise EdgedistalError(f"{path}: unknown config format {path.suffix!r}", "use a .yaml or .toml file")
    except EdgedistalError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser error is the user's file, said in one line
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise EdgedistalError(f"{path}: not valid {path.suffix[1:].upper()} ({first})",
                              "fix the file, or write the options as `name: value` lines") from exc
    if not isinstance(data, dict):
        raise EdgedistalError(f"{path}: expected option names and values, got {type(data).__name__}",
                              "write one `name: value` per option, e.g. `image-size: 96`")
    return data


def default_map(command: click.Command, data: dict[str, Any], path: Path) -> dict[str, Any]:
    """``data``'s keys (option names, with - or _) as the command's parameter names."""
    names: dict[str, str] = {}
    for p in command.params:
        if p.name is None:
            continue
        names[p.name] = p.name
        for opt in getattr(p, "opts", []) + getattr(p, "secondary_opts", []):
            names[opt.lstrip("-").replace("-", "_")] = p.name
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = names.get(str(key).lstrip("-").replace("-", "_"))
        if name is None or name == "config":
            raise EdgedistalError(f"{path}: {key!r} is not an option of `edgedistal {command.name}`",
                                  f"see `edgedistal {command.name} --help` for the option names")
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _load(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None:
        ctx.default_map = {**(ctx.default_map or {}), **default_map(ctx.command, read_config(value), value)}
    return value


def add_config_option(command: click.Command) -> click.Command:
    """Give ``command`` ``--config`` (eager: read before the other options take their defaults)
    and make it write its resolved config beside its outputs when it succeeds."""
    if any(p.name == "config" for p in command.params):
        return command
    command.params.insert(0, click.Option(
        ["--config"], type=click.Path(path_type=Path, dir_okay=False), is_eager=True, expose_value=False,
        callback=_load, help="YAML or TOML file of option values (keys: the option names); flags given "
                             "here win. Each run writes the resolved one beside its outputs (run_config.yaml)."))
    inner = command.callback
    if inner is not None:
        def callback(*args: Any, **kwargs: Any) -> Any:
            result = inner(*args, **kwargs)
            write_run_config(command.name or "", kwargs)
            return result

        command.callback = callback
    return command


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def resolved(params: dict[str, Any]) -> dict[str, Any]:
    """The options of a run as a plain mapping (what ``run_config.yaml`` holds)."""
    return {k.replace("_", "-"): _plain(v) for k, v in sorted(params.items()) if k not in NOT_SAVED}


def fingerprint(options: dict[str, Any]) -> str:
    """A short hash of what a run computes (where it writes, threads and device left out)."""
    keep = {k: v for k, v in options.items() if k.replace("-", "_") not in NOT_FINGERPRINTED}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_config_path(params: dict[str, Any]) -> Path | None:
    """Beside the outputs: OUT/run_config.yaml for a folder, OUT.run_config.yaml for a file."""
    out = params.get("out_dir") or params.get("out")
    if out is None:
        return None
    out = Path(out)
    if out.is_dir():
        return out / RUN_CONFIG
    if out.parent.is_dir():
        return out.with_name(f"{out.name}.{RUN_CONFIG}")
    return None


def write_run_config(command: str, params: dict[str, Any]) -> Path | None:
    """Write the resolved config of a finished run (atomically); None when it has no --out."""
    import yaml

    from edgedistal.utils.io import atomic_path

    path = run_config_path(params)
    if path is None:
        return None
    options = resolved(params)
    head = (f"# edgedistal {command}: the options this run used (fingerprint {fingerprint(options)}).\n"
            f"# Repeat it: edgedistal {command} --config {path.name} [--out ELSEWHERE]\n")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(head + yaml.safe_dump(options, sort_keys=True, allow_unicode=True), encoding="utf-8")
    return path
