"""nbgrader settings of the grader account: the hub-wide ones, then the course's.

Install as ``~grader-stn/.jupyter/nbgrader_config.py`` (docs/classroom.md). Loading both files here,
in this order, makes the course's settings win whatever order Jupyter reads its config folders in
(inside a virtual environment it reads the environment's before the user's).
"""

c = get_config()  # noqa: F821 - provided by nbgrader's config loader

load_subconfig("/etc/jupyter/nbgrader_config.py")  # noqa: F821 - the exchange, the course id
load_subconfig("/home/grader-stn/stn/nbgrader_config.py")  # noqa: F821 - the course directory's grading settings
