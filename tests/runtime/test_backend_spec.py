"""BackendSpec: one object says which backend serves which model (score, predict, bench, Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgedistal.errors import EdgedistalError
from edgedistal.runtime.select import BackendSpec
from edgedistal.scale.ray_jobs import BACKEND_DEFAULTS


def test_fields_of_a_default_spec_are_the_ray_digest_defaults() -> None:
    """Ray shard digests hash these fields: specs that existed before workspace_mb/prefix must
    spell the same, so cached shards of earlier runs are still found."""
    assert BackendSpec().fields() == BACKEND_DEFAULTS
    spec = BackendSpec("onnxruntime", "int8", onnx_dir=Path("exp"), prefix="embedder", workspace_mb=64)
    assert spec.onnx_dir == "exp" and spec.fields()["prefix"] == "embedder" and spec.fields()["workspace_mb"] == 64
    assert BackendSpec(**spec.fields()) == spec  # what a Ray actor rebuilds is what was sent


def test_open_checks_input_once_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(EdgedistalError, match="unknown precision"):
        BackendSpec(precision="fp8").open()
    with pytest.raises(EdgedistalError, match="checkpoint not found"):
        BackendSpec(checkpoint=tmp_path / "nope.pt").open()
    with pytest.raises(EdgedistalError, match="unknown backend"):
        BackendSpec("nosuch", checkpoint=None).open()
