"""Build the course site: one static HTML page per chapter, executed top to bottom, with Sphinx + myst-nb.

Usage::

    python site/build.py                  # the learner's full mode (make site): build/site/full/html/
    python site/build.py --fast           # STN_FAST=1 (tests): build/site/fast/html/, a banner on every page
    python site/build.py --no-solutions   # no solution code anywhere: build/site/full-nosolutions/html/

What it does:

1. Fetches MathJax and the widget manager (``site/assets.json``) with ``npm pack`` into the
   git-ignored ``build/site/npm/``, checks their integrity and unpacks the files the pages use:
   every script, style and font is served by the site itself.
2. Writes the Sphinx sources into ``<out>/src/``: the index (the README's introduction and its
   outline table, in the README's order) and one notebook per chapter made from the instructor
   notebook in ``solutions/``: hidden tests removed (nbgrader's ``ClearHiddenTests``); before each
   solution cell the student's stub (nbgrader's ``ClearSolutions``, shown, not run); the solution
   itself run but folded behind "Show the solution"; the launch cell drawn as Colab / Binder
   buttons under the chapter's title; the setup cell left out (it does nothing where ``stnlib`` is installed); links that
   leave the chapters pointed at the repository. Notebook 04 gets a strip of explorer settings
   drawn as figures next to its (embedded) explorer.
3. Runs ``sphinx-build`` with ``site/conf.py``. myst-nb executes every notebook through
   jupyter-cache, so a rebuild after a prose edit re-runs nothing. The cache keys on the
   notebooks' code cells only, not on ``STN_FAST`` nor on stnlib: each mode, and each version of
   stnlib and of the committed benchmark results, gets its own cache
   (``build/site/cache/<full|fast>-<hash>``). A build with and one without solutions share it:
   they run the same notebooks, and ``--no-solutions`` only drops the solution cells from the
   pages (``site/conf.py``).

Sources are rewritten only when they change, so Sphinx's own incremental build applies too.
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import nbformat
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions
from nbgrader.utils import is_grade, is_solution

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import launch  # noqa: E402  (site/launch.py: the course config and the launch cells)

BUILD = ROOT / "build" / "site"
ASSETS_SPEC = HERE / "assets.json"
NPM_DIR = BUILD / "npm"
THETA_STRIP = HERE / "cells" / "theta_strip.py"

#: Tags the site gives cells (site/conf.py and site/_static/stn-site.css read them).
STUB_TAG, SOLUTION_TAG, CHECK_TAG = "stn-stub", "stn-solution", "stn-check"


# --------------------------------------------------------------------------- assets


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch_assets(dest: Path, *, npm_dir: Path = NPM_DIR, log=print) -> Path:
    """Unpack the packages of ``site/assets.json`` into ``dest`` (``dest/<target>/...``); return ``dest``.

    Each package is fetched once with ``npm pack`` into ``npm_dir`` and checked against the
    integrity recorded in ``assets.json``.
    """
    spec = json.loads(ASSETS_SPEC.read_text())
    stamp = dest / ".assets.json"
    if stamp.exists() and stamp.read_text() == ASSETS_SPEC.read_text():
        return dest
    npm_dir.mkdir(parents=True, exist_ok=True)
    for pkg in spec["packages"]:
        name, version = pkg["package"], pkg["version"]
        tgz = npm_dir / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
        if not tgz.exists() or _integrity(tgz) != pkg["integrity"]:
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError(
                    "the site serves MathJax and the widget manager itself: it needs npm (Debian: apt-get install npm)"
                )
            log(f"fetching {name}@{version} with npm pack")
            out = subprocess.run(
                [npm, "pack", f"{name}@{version}", "--pack-destination", str(npm_dir), "--silent"],
                cwd=npm_dir,
                capture_output=True,
                text=True,
            )
            if out.returncode != 0 or not tgz.exists():
                raise RuntimeError(f"npm pack {name}@{version} failed:\n{out.stdout}\n{out.stderr}")
        if _integrity(tgz) != pkg["integrity"]:
            raise RuntimeError(f"{tgz.name}: integrity {_integrity(tgz)} is not the one in site/assets.json")
        target = dest / pkg["target"]
        shutil.rmtree(target, ignore_errors=True)
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                inner = member.name.removeprefix("package/")
                if not member.isfile() or not any(fnmatch.fnmatch(inner, pat) for pat in pkg["include"]):
                    continue
                out_path = target / inner.removeprefix(pkg["strip"])
                out_path.parent.mkdir(parents=True, exist_ok=True)
                out_path.write_bytes(tar.extractfile(member).read())
        if not any(target.rglob("*")):
            raise RuntimeError(f"{tgz.name}: nothing matched {pkg['include']}")
    stamp.write_text(ASSETS_SPEC.read_text())
    return dest


# --------------------------------------------------------------------------- notebooks

_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def _retarget_links(source: str, course: launch.Course, chapters: set[str]) -> str:
    """Point relative links that leave the chapters (``../../docs/x.md``) at the repository on GitHub."""

    def fix(m: re.Match) -> str:
        url = m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#", url):
            return m.group(0)
        path, _, anchor = url.partition("#")
        parts = Path("notebooks/_/" + path).as_posix().split("/")
        stack: list[str] = []
        for part in parts:
            if part == "..":
                stack = stack[:-1]
            elif part not in ("", "."):
                stack.append(part)
        if len(stack) == 3 and stack[0] == "notebooks" and stack[1] in chapters:
            return m.group(0)  # another chapter: a page of the site
        target = "/".join(stack) + (f"#{anchor}" if anchor else "")
        return f"{m.group(1)}{course.repository}/blob/{course.branch}/{target}{m.group(3)}"

    return _LINK.sub(fix, source)


def badges_markdown(course: launch.Course, name: str) -> str:
    """The launch cell as the site shows it: two buttons (images served by the site)."""
    nb = launch.student_path(name)
    return (
        '<p class="stn-launch">'
        f'<a href="{course.colab_url(nb)}"><img src="../_static/badge-colab.svg" alt="Open in Colab"></a> '
        f'<a href="{course.binder_url(nb)}"><img src="../_static/badge-binder.svg" alt="Launch on Binder"></a> '
        f'<span>or on your machine: <code>make lab</code> (<a href="{course.repository}#quick-start">setup</a>)</span>'
        "</p>"
    )


def _tags(cell, *extra: str) -> None:
    tags = cell.metadata.setdefault("tags", [])
    tags.extend(t for t in extra if t not in tags)


def site_notebook(path: Path, course: launch.Course, chapters: set[str]):
    """The notebook the site renders for instructor notebook ``path`` (see the module docstring)."""
    name = path.parent.name
    nb = nbformat.read(path, as_version=4)
    resources = {}
    nb, resources = ClearHiddenTests().preprocess(nb, resources)
    student, _ = ClearSolutions().preprocess(copy.deepcopy(nb), {})
    stubs = {c.id: c.source for c in student.cells if c.cell_type == "code" and is_solution(c)}
    cells = []
    for cell in nb.cells:
        if cell.get("id") == launch.SETUP_ID:
            continue
        if cell.get("id") == launch.LINKS_ID:
            continue  # on the site the buttons sit under the title (below)
        if cell.cell_type == "markdown":
            cell.source = _retarget_links(cell.source, course, chapters)
        elif is_solution(cell):
            stub = nbformat.v4.new_code_cell(stubs[cell.id], id=f"{cell.id}-stub"[:64])
            _tags(stub, "skip-execution", STUB_TAG)
            cell.source = "\n".join(
                line for line in cell.source.split("\n") if not re.match(r"\s*### (BEGIN|END) SOLUTION\b", line)
            )
            _tags(cell, "hide-input", SOLUTION_TAG)
            cell.metadata["mystnb"] = {"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
            cells += [stub, cell]
            continue
        elif is_grade(cell):
            _tags(cell, CHECK_TAG)
        cells.append(cell)
        if name == "04_theta_explorer" and cell.cell_type == "code" and "ThetaExplorer()" in cell.source:
            cells += theta_strip_cells(course, name)
    title = next(i for i, c in enumerate(cells) if c.cell_type == "markdown")
    heading, _, rest = cells[title].source.partition("\n")
    cells[title].source = f"{heading}\n\n{badges_markdown(course, name)}\n{rest}"
    nb.cells = cells
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.validate(nb)
    return nb


def theta_strip_cells(course: launch.Course, name: str) -> list:
    """Notebook 04 on the site: a note on what a static page can do, and a strip of settings as figures."""
    nb = launch.student_path(name)
    note = nbformat.v4.new_markdown_cell(
        "```{note}\n"
        "**On this page the explorer is a picture of its last state.** The sliders above come from the\n"
        "notebook's run, but moving them needs the Python kernel that computes each view. To use the\n"
        f"explorer, [open this chapter in Colab]({course.colab_url(nb)}) or\n"
        f"[launch it on Binder]({course.binder_url(nb)}) (or run `make lab`). Below, drawn by the same\n"
        "code, six slider settings: the grid each one lays on the input, and the output it makes.\n"
        "```",
        id="site-theta-note",
    )
    strip = nbformat.v4.new_code_cell(THETA_STRIP.read_text().rstrip("\n"), id="site-theta-strip")
    _tags(strip, "remove-input")
    return [note, strip]


# --------------------------------------------------------------------------- index

_OUTLINE = re.compile(r"^## Outline\n(.*?)(?=^## )", re.S | re.M)


def index_markdown(readme: str, chapters: list[str], *, fast: bool, solutions: bool) -> str:
    """The site's front page: the README's title and introduction, how to use the site, the outline table."""
    title, _, rest = readme.partition("\n")
    intro = rest.split(launch.README_BEGIN)[0].split("\n## ")[0].strip()
    match = _OUTLINE.search(readme)
    if match is None:
        raise ValueError("README.md has no '## Outline' section")
    outline = match.group(1).strip()
    linked = re.findall(r"\]\(notebooks/([^/]+)/\1\.ipynb\)", outline)
    if linked != chapters:
        raise ValueError(f"README's outline lists {linked}, but solutions/ holds {chapters}: update the README's table")
    outline = re.sub(r"\]\(notebooks/([^/)]+/[^)]+\.ipynb)\)", r"](\1)", outline)
    mode = (
        "in **fast mode** (`STN_FAST=1`, the tests' tiny budgets: the numbers are not the course's)"
        if fast
        else "in the course's full mode, as a learner runs them"
    )
    how = (
        "Each chapter is one of the course's notebooks, run from top to bottom "
        f"{mode}: the figures and printed results are what you get when you run it. "
        "Exercises show the stub you fill in and the check that grades it"
        + (", with the worked solution folded away behind **Show the solution**." if solutions else ".")
        + " The buttons at the top of every chapter open its notebook in Colab or on Binder;"
        " on your own machine, clone the repository and run `make lab`."
    )
    toctree = "\n".join(f"{c}/{c}" for c in chapters)
    return (
        f"{title}\n\n{intro}\n\n## How to use this site\n\n{how}\n\n## Outline\n\n{outline}\n\n"
        f"```{{toctree}}\n:hidden:\n:maxdepth: 1\n\n{toctree}\n```\n"
    )


# --------------------------------------------------------------------------- build


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def write_sources(src: Path, *, fast: bool, solutions: bool) -> list[str]:
    """Write the index and the chapter notebooks into ``src``; return the chapter names."""
    course = launch.load_course()
    paths = launch.notebook_paths()
    chapters = [p.parent.name for p in paths]
    _write_if_changed(
        src / "index.md",
        index_markdown((ROOT / "README.md").read_text(), chapters, fast=fast, solutions=solutions),
    )
    for path in paths:
        nb = site_notebook(path, course, set(chapters))
        _write_if_changed(src / path.parent.name / path.name, nbformat.writes(nb) + "\n")
    keep = {"index.md", *chapters}
    for stale in src.iterdir():
        if stale.name not in keep:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    return chapters


def code_fingerprint() -> str:
    """A hash of what the notebooks run besides their own cells: stnlib's code and the committed results."""
    digest = hashlib.sha256()
    files = sorted([*(ROOT / "stnlib").rglob("*.py"), *(ROOT / "benchmarks" / "results").rglob("*")])
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def cache_dir(*, fast: bool, root: Path = BUILD / "cache") -> Path:
    """The execution cache for this mode and this version of stnlib (older ones of the mode are removed).

    jupyter-cache keys on the notebooks' code cells only: a change in stnlib or in a results file
    must not leave stale outputs in the site, so each version of them gets a cache of its own.
    """
    mode = "fast" if fast else "full"
    path = root / f"{mode}-{code_fingerprint()}"
    for old in root.glob(f"{mode}-*"):
        if old != path:
            shutil.rmtree(old, ignore_errors=True)
    return path


def build(
    *,
    fast: bool = False,
    solutions: bool = True,
    out: Path | None = None,
    quiet: bool = False,
    cache: Path | None = None,
    timeout: float | None = None,
) -> Path:
    """Build the site; return the folder that holds ``index.html``.

    Args:
        fast: run the notebooks with ``STN_FAST=1`` (every page then says so).
        solutions: show the solutions (folded); False leaves every solution cell out.
        out: the output folder (default ``build/site/<full|fast>[-nosolutions]``); HTML goes to ``out/html``.
        quiet: print nothing unless it fails.
        cache: the execution cache (default :func:`cache_dir`).
        timeout: seconds sphinx-build may take (default: no limit).
    """
    variant = ("fast" if fast else "full") + ("" if solutions else "-nosolutions")
    out = Path(out or BUILD / variant).resolve()
    log = (lambda *_: None) if quiet else print
    assets = fetch_assets(BUILD / "assets", log=log)
    write_sources(out / "src", fast=fast, solutions=solutions)
    cache = Path(cache or cache_dir(fast=fast))
    env = dict(os.environ)
    env.update(
        {
            "STN_FAST": "1" if fast else "0",
            "STN_SITE_SOLUTIONS": "1" if solutions else "0",
            "STN_SITE_ASSETS": str(assets),
            "STN_SITE_CACHE": str(cache),
            "MPLBACKEND": "Agg",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
    )
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-b",
        "html",
        "-c",
        str(HERE),
        "-d",
        str(out / "doctrees"),
        "-W",
        "--keep-going",
        "-q" if quiet else "-N",
        str(out / "src"),
        str(out / "html"),
    ]
    started = time.monotonic()
    log(f"building the {variant} site into {out / 'html'} ...")
    pipe = subprocess.PIPE if quiet else None
    # Its own session, so that on a timeout the kernels it started go with it.
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=pipe, stderr=pipe, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"sphinx-build ran past {timeout:.0f} s ({variant} site)") from None
    except BaseException:  # Ctrl-C, or the caller's own error: stop the build and its kernels too
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    if proc.returncode != 0:
        detail = f"\n{stdout}\n{stderr}" if quiet else ""
        raise RuntimeError(f"sphinx-build failed ({variant} site){detail}")
    log(f"built in {time.monotonic() - started:.0f} s: open {out / 'html' / 'index.html'}")
    return out / "html"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="STN_FAST=1: small budgets (tests); every page says so")
    parser.add_argument("--no-solutions", action="store_true", help="leave every solution out (a graded class)")
    parser.add_argument("--out", type=Path, help="output folder (default build/site/<full|fast>[-nosolutions])")
    args = parser.parse_args(argv)
    try:
        build(fast=args.fast, solutions=not args.no_solutions, out=args.out)
    except RuntimeError as err:
        print(f"site: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
