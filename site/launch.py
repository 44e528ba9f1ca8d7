"""The launch cells of every chapter and the README's launch links, written from ``site/course.json``.

``site/course.json`` is the one place that names the course's repository. From it this script
writes, into every instructor notebook ``solutions/NN_name/NN_name.ipynb``, two cells placed
right before the notebook's first code cell:

- a markdown cell (id ``stn-launch``) with the chapter's "Open in Colab" and "Launch on Binder"
  links (they open the *student* notebook, ``notebooks/NN_name/NN_name.ipynb``);
- the setup cell (id ``stn-setup``): where the course's package ``stnlib`` is not importable
  (Colab), it clones the course and installs it (``pip install --editable``), saying so in one
  line; where ``stnlib`` is installed (``make lab``, Binder, nbgrader) it does nothing. The
  environment variable ``STN_COURSE_REPO`` replaces the repository it clones (the tests point
  it at the local checkout).

It also writes the launch paragraph of ``README.md`` (between two HTML comments). Running it
again changes nothing; cells it wrote before are updated where they are. Then ``make release``
carries the cells to the student notebooks.

Usage::

    python site/launch.py           # write the cells and the README paragraph
    python site/launch.py --check   # exit 1, naming what is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import nbformat

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Path(__file__).resolve().parent / "course.json"
SOLUTIONS = ROOT / "solutions"
README = ROOT / "README.md"

LINKS_ID = "stn-launch"
SETUP_ID = "stn-setup"
README_BEGIN = "<!-- launch links: written by `python site/launch.py` from site/course.json (edit that, not this) -->"
README_END = "<!-- end of launch links -->"
#: The environment variable that replaces the repository the setup cell clones.
REPO_ENV = "STN_COURSE_REPO"


@dataclass(frozen=True)
class Course:
    """What ``site/course.json`` says: the repository (a GitHub URL), its branch, and where things live."""

    title: str
    repository: str
    branch: str
    site_url: str
    colab: str
    binderhub: str

    @property
    def owner_and_name(self) -> tuple[str, str]:
        """("owner", "name") of the GitHub repository."""
        parts = urlparse(self.repository).path.strip("/").removesuffix(".git").split("/")
        return parts[0], parts[1]

    @property
    def folder(self) -> str:
        """The folder the setup cell clones the course into (the repository's name)."""
        return self.owner_and_name[1]

    def colab_url(self, student_notebook: str) -> str:
        """Colab's URL of a notebook of the repository, e.g. ``notebooks/01_x/01_x.ipynb``."""
        owner, name = self.owner_and_name
        return f"{self.colab}/github/{owner}/{name}/blob/{self.branch}/{student_notebook}"

    def binder_url(self, student_notebook: str) -> str:
        """A Binder URL that builds the repository and opens the notebook in JupyterLab."""
        owner, name = self.owner_and_name
        return f"{self.binderhub}/v2/gh/{owner}/{name}/{self.branch}?urlpath=lab/tree/{student_notebook}"


def load_course(path: Path = CONFIG) -> Course:
    """Read and check ``site/course.json``; a clear error names the key that is wrong."""
    data = json.loads(Path(path).read_text())
    missing = [k for k in ("title", "repository", "branch", "site_url", "colab", "binderhub") if not data.get(k)]
    if missing:
        raise ValueError(f"{path}: missing or empty keys {missing}")
    url = urlparse(data["repository"])
    parts = url.path.strip("/").split("/")
    if url.scheme != "https" or url.netloc != "github.com" or len(parts) != 2:
        raise ValueError(
            f"{path}: 'repository' must be https://github.com/<owner>/<name> (Colab and Binder open GitHub "
            f"repositories); got {data['repository']!r}"
        )
    return Course(**{k: data[k].rstrip("/") if k != "site_url" else data[k] for k in Course.__dataclass_fields__})


def student_path(name: str) -> str:
    """The student notebook of assignment ``name``, relative to the repository root."""
    return f"notebooks/{name}/{name}.ipynb"


def links_markdown(course: Course, name: str) -> str:
    """The markdown launch cell of assignment ``name``."""
    nb = student_path(name)
    return (
        f"**Run this chapter:** [Open in Colab]({course.colab_url(nb)}) · "
        f"[Launch on Binder]({course.binder_url(nb)}) · "
        f"or on your machine with `make lab` ([setup]({course.repository}#quick-start)).\n"
        "On Colab, run the setup cell below first: it installs the course (a minute or two)."
    )


def setup_source(course: Course) -> str:
    """The setup cell's code (the same in every notebook)."""
    return f'''# Setup: where the course's package `stnlib` is missing (Colab), clone the course and install it.
# After `make lab`, on Binder and while nbgrader grades, stnlib is installed and this cell does nothing.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("stnlib") is None:
    _course = os.environ.get("{REPO_ENV}", "{course.repository}")
    _folder = os.path.abspath("{course.folder}")
    print(f"stnlib is not installed here: installing the course from {{_course}} into {{_folder}} (a minute or two)")
    if not os.path.isdir(os.path.join(_folder, "stnlib")):
        subprocess.run(["git", "clone", "--quiet", "--depth=1", "--branch={course.branch}", _course, _folder], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--editable", _folder], check=True)
    sys.path.insert(0, _folder)  # this kernel imports it now; a restarted kernel finds the editable install'''


def launch_cells(course: Course, name: str) -> list:
    """The two cells (links, setup) for assignment ``name``, with fixed ids and no outputs."""
    links = nbformat.v4.new_markdown_cell(links_markdown(course, name), id=LINKS_ID)
    setup = nbformat.v4.new_code_cell(setup_source(course), id=SETUP_ID)
    return [links, setup]


def _index(cells, cell_id: str) -> int | None:
    return next((i for i, c in enumerate(cells) if c.get("id") == cell_id), None)


def apply_to_notebook(nb, course: Course, name: str) -> bool:
    """Put the launch cells into ``nb`` (in place); True when something changed.

    Cells written before are updated where they stand; otherwise both go right before the
    first code cell (after the title and the grading note).
    """
    wanted = launch_cells(course, name)
    at = [_index(nb.cells, LINKS_ID), _index(nb.cells, SETUP_ID)]
    if None not in at and at[1] == at[0] + 1:
        changed = False
        for i, new in zip(at, wanted):
            old = nb.cells[i]
            if old.cell_type != new.cell_type or old.source != new.source or old.metadata != new.metadata:
                nb.cells[i] = new
                changed = True
            elif new.cell_type == "code" and (old.outputs or old.execution_count is not None):
                nb.cells[i] = new
                changed = True
        return changed
    nb.cells = [c for c in nb.cells if c.get("id") not in (LINKS_ID, SETUP_ID)]
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells[first_code:first_code] = wanted
    return True


def readme_block(course: Course) -> str:
    """The README's launch paragraph (between the two marker comments)."""
    first = student_path("01_affine_matrices")
    return (
        f"{README_BEGIN}\n"
        f"- **Read it on the web:** every chapter with its figures and printed results, at\n"
        f"  <{course.site_url}>, where the instructor guide (section 6) publishes it (the address is set in\n"
        f"  `site/course.json`); `make site` builds the same site into `build/site/full/html/`.\n"
        f"- **Run it in the cloud:** [Open in Colab]({course.colab_url(first)}) ·\n"
        f"  [Launch on Binder]({course.binder_url(first)}); every chapter's page and notebook has these buttons.\n"
        f"{README_END}"
    )


def apply_to_readme(text: str, course: Course) -> str:
    """``text`` with its launch paragraph replaced (or added after the first paragraph after the title)."""
    block = readme_block(course)
    if README_BEGIN in text and README_END in text:
        head, rest = text.split(README_BEGIN, 1)
        _, tail = rest.split(README_END, 1)
        return head + block + tail
    anchor = "\n## Quick start"
    if anchor not in text:
        raise ValueError("README.md has no '## Quick start' section to put the launch links before")
    head, tail = text.split(anchor, 1)
    return head.rstrip("\n") + "\n\n" + block + "\n" + anchor + tail


def notebook_paths(source: Path = SOLUTIONS) -> list[Path]:
    """The instructor notebooks, one per assignment folder, in order."""
    return sorted(p for p in Path(source).glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def sync(course: Course, *, write: bool, source: Path = SOLUTIONS, readme: Path = README) -> list[str]:
    """Bring every notebook and the README in line with ``course``; return what was (or would be) changed."""
    stale = []
    for path in notebook_paths(source):
        nb = nbformat.read(path, as_version=4)
        if apply_to_notebook(nb, course, path.parent.name):
            stale.append(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))
            if write:
                nbformat.validate(nb)
                path.write_text(nbformat.writes(nb) + "\n")
    text = Path(readme).read_text()
    new = apply_to_readme(text, course)
    if new != text:
        stale.append(Path(readme).name)
        if write:
            Path(readme).write_text(new)
    return stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is out of date")
    args = parser.parse_args(argv)
    course = load_course()
    stale = sync(course, write=not args.check)
    if args.check:
        if stale:
            print("out of date (run `python site/launch.py`, then `make release`):", *stale, sep="\n  ")
            return 1
        print("launch cells and README links match site/course.json")
        return 0
    for item in stale:
        print(f"updated {item}")
    if any(s.endswith(".ipynb") for s in stale):
        print("now run `make release` so that notebooks/ carries the launch cells")
    elif not stale:
        print("nothing to change")
    return 0


if __name__ == "__main__":
    sys.exit(main())
