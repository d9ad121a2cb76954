"""Shared fixtures: generated data for unit tests, real ../shared data for integration tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("EDGEDISTAL_NO_PROGRESS", "1")
# tests sit beside the stage they test (tests/<stage>/); shared helpers (cli_run) live here
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep image caches of the test run out of the user's ~/.cache (datasets are reused)."""
    if "EDGEDISTAL_CACHE" not in os.environ:
        os.environ["EDGEDISTAL_CACHE"] = str(tmp_path_factory.mktemp("edcache"))


@pytest.fixture(scope="session")
def shared_data():
    """Return a function name → extracted folder; skips the test when ../shared is absent."""
    from edgedistal.data.archive import shared_dataset, shared_datasets_dir

    def get(name: str) -> Path:
        if shared_datasets_dir() is None:
            pytest.skip("../shared/datasets not found (set EDGEDISTAL_SHARED to run real-data tests)")
        path = shared_dataset(name)
        if path is None:
            pytest.skip(f"{name}.tar not in the shared datasets folder")
        return path

    return get


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated dataset on disk (csv layout: metadata.csv + real/ fake/)."""
    from edgedistal.data.synth import SynthConfig, write_dataset

    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, SynthConfig(n_groups=12, fakes_per_real=2, frames_per_video=4, size=64, seed=3))
    return out
