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
# The 30 s cell timeout while grading, and deleted test cells restored: stnlib.release.configure_grading,
# shared with a hub's course directory (classroom/nbgrader/course_nbgrader_config.py).
from stnlib.release import configure_grading  # noqa: E402

configure_grading(c)
