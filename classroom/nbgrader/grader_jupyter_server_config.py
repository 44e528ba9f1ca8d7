"""JupyterLab settings of the grader account, whose server is the formgrader service.

Install as ``~grader-stn/.jupyter/jupyter_server_config.py`` (docs/classroom.md).
"""

c = get_config()  # noqa: F821 - provided by Jupyter's config loader

# The formgrader is switched off for everyone in the shared environment (students must not get
# it); here it is switched on again. This file is the way that works: with jupyter_server 2,
# `jupyter server extension enable --user nbgrader.server_extensions.formgrader` prints
# "Validation failed: ... could not be found" for an extension configured at another level and
# still exits 0, changing nothing. Settings in this file win over the shared JSON ones.
c.ServerApp.jpserver_extensions = {"nbgrader.server_extensions.formgrader": True}

# Since JupyterHub 4.1 every single-user server sends `Content-Security-Policy: frame-ancestors
# 'none'`, so no page may show it in a frame, and JupyterLab shows the formgrader in one: the panel
# stays blank. Only this server needs framing, and only by its own pages ('self'); students'
# servers keep the hub's default.
c.ServerApp.tornado_settings = {"headers": {"Content-Security-Policy": "frame-ancestors 'self'"}}
