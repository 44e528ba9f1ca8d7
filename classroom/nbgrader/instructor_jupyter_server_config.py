"""JupyterLab settings of an instructor's own server: the course list (Nbgrader > Courses).

Install as ``~jupyter-<instructor>/.jupyter/jupyter_server_config.py`` (docs/classroom.md). The
course list finds the course's formgrader through the hub; it is switched off for everyone in the
shared environment, because for a student it can only fail (students hold no scope to read the
hub's services). As for the formgrader, `jupyter server extension enable --user` does not work
for an extension configured at another level (it says "Validation failed" and exits 0), so the
setting lives here.
"""

c = get_config()  # noqa: F821 - provided by Jupyter's config loader

c.ServerApp.jpserver_extensions = {"nbgrader.server_extensions.course_list": True}
