"""Jupyter settings of the single-user image (Zero to JupyterHub): nbgrader's parts by role.

Copied to /etc/jupyter/jupyter_server_config.py by classroom/z2jh/Dockerfile. Every server runs the
same image; the hub sets STN_ROLE=grader for members of formgrade-stn (values.yaml, extraConfig).
Instructors get the formgrader and the course list, students only the assignment list.
"""

import os

c = get_config()  # noqa: F821 - provided by Jupyter's config loader

GRADER = os.environ.get("STN_ROLE") == "grader"

c.ServerApp.jpserver_extensions = {
    "nbgrader.server_extensions.assignment_list": True,
    "nbgrader.server_extensions.formgrader": GRADER,
    "nbgrader.server_extensions.course_list": GRADER,
}
if GRADER:
    # JupyterLab shows the formgrader in a frame of the same server (JupyterHub >= 4.1 forbids
    # every frame by default)
    c.ServerApp.tornado_settings = {"headers": {"Content-Security-Policy": "frame-ancestors 'self'"}}
