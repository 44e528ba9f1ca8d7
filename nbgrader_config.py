"""nbgrader configuration for the course.

- ``solutions/`` is nbgrader's *source* directory (the instructor notebooks, with solutions
  and hidden tests); ``notebooks/`` is its *release* directory (what students get).
- One assignment per notebook: ``solutions/01_affine_matrices/01_affine_matrices.ipynb``
  is released as ``notebooks/01_affine_matrices/01_affine_matrices.ipynb``.
- Regenerate the release with ``make release`` (never edit ``notebooks/`` by hand).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # so stnlib.release is importable without installing the package

c = get_config()  # noqa: F821 - provided by nbgrader's config loader

c.CourseDirectory.root = HERE
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"

# Tests (grade cells) are tagged ``raises-exception`` in the release: JupyterLab's "Run All"
# then goes on past a failing check, and nbval accepts their errors in the untouched stubs.
# The tag is added just before the checksums are computed (tags are not part of them).
from nbgrader import preprocessors as pp  # noqa: E402

from stnlib.release import TagTestCells  # noqa: E402

# nbgrader 0.9's default list, with TagTestCells added before the final checksums.
c.GenerateAssignment.preprocessors = [
    pp.IncludeHeaderFooter,
    pp.InstantiateTests,
    pp.LockCells,
    pp.ClearSolutions,
    pp.ClearOutput,
    pp.CheckCellMetadata,
    pp.ComputeChecksums,
    pp.SaveCells,
    pp.ClearHiddenTests,
    pp.ClearMarkScheme,
    TagTestCells,
    pp.ComputeChecksums,
    pp.CheckCellMetadata,
]

# Grading: a cell that runs longer than this is interrupted, scores 0, and grading goes on.
c.Execute.timeout = 30
c.Execute.interrupt_on_timeout = True
c.Execute.kernel_name = "python3"

# A student who deletes a test cell is graded with the instructor's copy of it.
c.OverwriteCells.add_missing_cells = True
