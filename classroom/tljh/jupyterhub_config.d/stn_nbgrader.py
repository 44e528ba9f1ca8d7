"""JupyterHub settings for a class of "STN from scratch" graded with nbgrader (one server, TLJH-style).

Put this file in The Littlest JupyterHub's ``/opt/tljh/config/jupyterhub_config.d/`` and run
``sudo tljh-config reload hub`` (docs/classroom.md walks through every step). It gives the hub:

- the groups nbgrader reads: ``nbgrader-<course>`` (students, and instructors who want the course
  list) and ``formgrade-<course>`` (who may open the formgrader);
- the formgrader as a hub service named like the course: ``jupyterhub-singleuser`` running as the
  Unix account ``grader-<course>`` that owns the course directory and the gradebook, started by
  its own systemd unit (``classroom/tljh/formgrader-stn.service``);
- roles with the least scopes nbgrader needs, and the scopes of each single-user server's token.

The settings below can be edited here or given in the hub's environment (the test of this file,
``tests/test_classroom.py``, starts a real hub with them set to its own throw-away values).
"""

import os

c = get_config()  # noqa: F821 - provided by JupyterHub's config loader

# --- the course ------------------------------------------------------------------------------
COURSE_ID = os.environ.get("STN_COURSE_ID", "stn")
# hub user names (on TLJH the hub name, not the Unix name jupyter-<name>) of the instructors
INSTRUCTORS = os.environ.get("STN_INSTRUCTORS", "").split()
# a free port on 127.0.0.1 for the formgrader service (the hub's proxy forwards /services/<course>/ to it)
FORMGRADER_PORT = int(os.environ.get("STN_FORMGRADER_PORT", "9999"))

STUDENTS_GROUP = f"nbgrader-{COURSE_ID}"
GRADERS_GROUP = f"formgrade-{COURSE_ID}"

# Groups: created at start-up; membership only grows from here (add students through the admin
# panel or the REST API: POST /hub/api/groups/nbgrader-<course>/users {"users": [...]}).
c.JupyterHub.load_groups = {
    STUDENTS_GROUP: {"users": INSTRUCTORS},
    GRADERS_GROUP: {"users": INSTRUCTORS},
}

# Roles: what each group may do, and nothing more.
c.JupyterHub.load_roles = [
    {
        # Students (members of nbgrader-<course>) need no scope beyond their own ('self'): fetching,
        # submitting and fetching feedback read only their own group membership (below).
        "name": f"{GRADERS_GROUP}-role",
        "groups": [GRADERS_GROUP],
        "scopes": [
            # open the formgrader (its pages and API at /services/<course>/)
            f"access:services!service={COURSE_ID}",
            # the course list in JupyterLab finds the formgrader: list the services, and read this
            # one's model with its URL prefix (without it: KeyError 'prefix' for non-admins)
            "list:services",
            f"read:services!service={COURSE_ID}",
        ],
    },
]

# The token each single-user server gets (JUPYTERHUB_API_TOKEN) holds the subset of these scopes
# that its user holds. The defaults (the first two) are too few for nbgrader: the exchange asks the
# hub which nbgrader-/formgrade- groups the user is in ("You do not have access to this course"
# without read:users:groups), and the course list needs the two service scopes of the role above.
c.Spawner.server_token_scopes = [
    "users:activity!user",  # default: the server reports activity
    "access:servers!server",  # default: the server checks who may open it
    "read:users:name!user",  # nbgrader reads GET /hub/api/users/<me> ...
    "read:users:groups!user",  # ... for the groups that name the user's courses
    "list:services",  # instructors only (held through the role above)
    f"read:services!service={COURSE_ID}",  # instructors only
]

# The formgrader: the grader account's own JupyterLab, open to the formgrade-<course> group at
# /services/<course>/ (in JupyterLab: Nbgrader > Formgrader). It runs as its own systemd unit
# (formgrader-stn.service beside this folder), not as a service the hub starts: the hub gives a
# service it starts 10 seconds to answer and exits when it does not, and JupyterLab with nbgrader
# can take longer on a busy small server, which would take the whole hub down with it.
# The unit and the hub share the service's token through FORMGRADER_ENV_FILE (root's, mode 0600),
# one line: JUPYTERHUB_API_TOKEN=<openssl rand -hex 32>.
FORMGRADER_ENV_FILE = os.environ.get("STN_FORMGRADER_ENV_FILE", f"/etc/stn-classroom/formgrader-{COURSE_ID}.env")


def _token(path):
    with open(path) as f:
        for line in f:
            if line.startswith("JUPYTERHUB_API_TOKEN="):
                return line.split("=", 1)[1].strip()
    raise ValueError(f"{path} has no line JUPYTERHUB_API_TOKEN=<token>")


c.JupyterHub.services = [
    {
        "name": COURSE_ID,
        "url": f"http://127.0.0.1:{FORMGRADER_PORT}",
        "api_token": _token(FORMGRADER_ENV_FILE),
        "oauth_no_confirm": True,  # instructors go straight in, without an authorisation page
    }
]

# Every user's server:
# - torch starts one thread per core of the machine, not per core the user may use: with a CPU
#   limit (sudo tljh-config set limits.cpu 2), OMP_NUM_THREADS is set to it. A callable, read at
#   spawn time: this file cannot see the limit TLJH sets (load_subconfig gives it a config of its own);
# - settings in ~/.jupyter win over the environment's (jupyter_core puts a virtual environment's
#   first), so that the grader's and instructors' `jupyter labextension enable --level=user` count.
c.Spawner.environment.update(
    {
        "OMP_NUM_THREADS": lambda spawner: str(max(1, int(spawner.cpu_limit or os.cpu_count() or 1))),
        "JUPYTER_PREFER_ENV_PATH": "0",
    }
)
