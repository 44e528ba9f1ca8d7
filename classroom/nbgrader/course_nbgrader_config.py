"""nbgrader settings of the course directory that the grader account owns (the formgrader reads them).

Install as ``/home/grader-stn/stn/nbgrader_config.py`` (the course directory), and point the grader
account at it with ``~grader-stn/.jupyter/nbgrader_config.py`` holding
``c.CourseDirectory.root = "/home/grader-stn/stn"`` (docs/classroom.md). The grading settings
are the repository's own (``nbgrader_config.py`` at its root, which tests/test_classroom.py
checks this file against); only the folder names differ: ``source/`` and ``release/`` as
nbgrader expects on a hub, instead of ``solutions/`` and ``notebooks/``.
"""

import os

from nbgrader.auth import NoAuthPlugin

from stnlib.release import configure_grading

c = get_config()  # noqa: F821 - provided by nbgrader's config loader

HERE = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.root = HERE
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
# The gradebook stays on the server's local disk: sqlite on NFS loses locks (and data).
c.CourseDirectory.db_url = f"sqlite:///{os.path.join(HERE, 'gradebook.db')}"

# The grader account asks the hub nothing: it is no hub user, and its service token holds no
# scope (the global config's JupyterHubAuthPlugin would ask the hub for its groups and get 403
# when listing released assignments). Students' and instructors' servers keep the plugin.
c.Authenticator.plugin_class = NoAuthPlugin

# The student version, the 30 s cell timeout while grading, deleted test cells restored: the
# repository's own settings (stnlib.release.configure_grading, which its nbgrader_config.py calls too).
configure_grading(c)

# While grading, notebooks run in fast mode (small data, few training steps); the kernels that
# nbgrader starts inherit this process's environment. Data and checkpoints go to the course
# directory, which the grader account owns (not to the installed package's folder).
os.environ["STN_FAST"] = "1"
os.environ.setdefault("STN_DATA_DIR", os.path.join(HERE, "data"))
os.environ.setdefault("STN_ARTIFACTS_DIR", os.path.join(HERE, "artifacts"))
