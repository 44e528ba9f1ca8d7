"""stnlib: the small helper package of the course *STN from scratch*.

Modules, named for what they hold:

- ``stnlib.geometry``: 3x3 affine matrices, theta, pixel <-> normalised coordinates (notebooks 01-02).
- ``stnlib.sampling``: the hand-built ``affine_grid`` and ``grid_sample`` (notebooks 02-03).
- ``stnlib.plotting``: figure helpers shared by the notebooks.
- ``stnlib.checks``: the checks that exercise cells run (visible messages and hidden grading).
- ``stnlib.validation``: argument checks with clear error messages.
- ``stnlib.config``: ``FAST`` mode (``STN_FAST=1``).
"""

from . import config, geometry, sampling, validation

__version__ = "0.1.0"
__all__ = ["config", "geometry", "sampling", "validation"]
