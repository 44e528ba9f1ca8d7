"""Test-wide settings: the fast mode of every notebook, and a clean matplotlib backend."""

import os

# Notebooks executed by nbval (kernels inherit this environment) and by the tests run in
# fast mode unless the caller asks otherwise (STN_FAST=0 pytest ... runs the full course).
os.environ.setdefault("STN_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
