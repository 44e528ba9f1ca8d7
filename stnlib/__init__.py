"""stnlib: the small helper package of the course *STN from scratch*.

Modules, named for what they hold (and the notebook that introduces them):

- ``stnlib.geometry``: 3x3 affine matrices, theta, pixel <-> normalised coordinates (01-02).
- ``stnlib.sampling``: the hand-built ``affine_grid`` and ``grid_sample`` (02-03).
- ``stnlib.images``: small demo images: an MNIST digit, a checkerboard, the letter F (01-04).
- ``stnlib.plotting``: figure helpers shared by the notebooks.
- ``stnlib.widgets``: the theta explorer (04).
- ``stnlib.warps``: projective and thin-plate-spline sampling grids (05-07).
- ``stnlib.data``: MNIST / Fashion-MNIST with an offline fallback, the distorted variants and MNIST addition (05-07).
- ``stnlib.models``: localisation network, spatial transformers (affine to TPS, parallel, on feature maps), CNN baseline (05-07).
- ``stnlib.train``: training loop, checkpoints, metrics, and the CLI ``python -m stnlib.train`` (05-07).
- ``stnlib.undo``: how far a trained transformer undoes each test digit's distortion (05-07).
- ``stnlib.checks``: the checks that exercise cells run (visible messages and hidden grading).
- ``stnlib.blocking``: switches the reference functions off while an exercise is checked.
- ``stnlib.validation``: argument checks with clear error messages.
- ``stnlib.config``: ``FAST`` mode (``STN_FAST=1``), ``GRADING`` (under nbgrader), ``SMALL`` (either), and the
  course's folders (``data_dir``, ``artifacts_dir``, ``results_path``).
- ``stnlib.release``: builds the student release ``notebooks/`` from ``solutions/`` with nbgrader.

Only the light modules are imported here; import the others by name (``from stnlib import train``).
"""

from . import config, geometry, sampling, validation

__version__ = "0.1.0"
__all__ = ["config", "geometry", "sampling", "validation"]
