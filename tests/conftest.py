"""Test-wide settings: the fast mode of every notebook, and a clean matplotlib backend."""

import os

import pytest

# Notebooks executed by nbval (kernels inherit this environment) and by the tests run in
# fast mode unless the caller asks otherwise (STN_FAST=0 pytest ... runs the full course).
os.environ.setdefault("STN_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """An empty data directory, with STN_DATA_DIR pointing at it and downloads off (module-wide)."""
    root = tmp_path_factory.mktemp("stn_data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STN_DATA_DIR", str(root))
        mp.setenv("STN_OFFLINE", "1")
        yield root
