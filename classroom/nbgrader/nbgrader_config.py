"""nbgrader settings for everyone on the hub: where the exchange is and who is in which course.

Install as ``/etc/jupyter/nbgrader_config.py`` (every user's nbgrader reads it; docs/classroom.md).
The grader account's course directory has its own ``nbgrader_config.py`` (``course_nbgrader_config.py``
beside this file) with the grading settings.
"""

from nbgrader.auth import JupyterHubAuthPlugin

c = get_config()  # noqa: F821 - provided by nbgrader's config loader

# The course students fetch from and submit to (the hub groups are nbgrader-stn / formgrade-stn).
c.CourseDirectory.course_id = "stn"

# The exchange: a directory on the server's local disk, created once by root with mode 1777
# (everyone may create entries, nobody may delete another's):
#     install -d -m 1777 /srv/nbgrader/exchange
# Releasing creates <root>/stn/outbound (0755, the grader's), inbound (0733 + setgid: students may
# write but not list it) and feedback (0711: a student finds only feedback whose hashed name they know).
c.Exchange.root = "/srv/nbgrader/exchange"

# Fetched assignments land in ~/stn/<assignment>/ (room for more than one course).
c.Exchange.path_includes_course = True

# Course membership comes from the hub's groups (nbgrader-<course>, formgrade-<course>), asked
# through the hub's REST API with the server's token (see the jupyterhub_config.d file for its scopes).
c.Authenticator.plugin_class = JupyterHubAuthPlugin
