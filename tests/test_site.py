"""The course site and the launch cells: site/launch.py, site/build.py, and the built site in Chromium.

Fast tests (``make test-fast``):

- every notebook in ``solutions/`` and ``notebooks/`` carries the launch cells exactly as
  ``site/launch.py`` writes them from ``site/course.json`` (and so does the README);
- the script is idempotent and puts the cells before the first code cell;
- the notebooks the site renders show each exercise as the student's stub (the very cell of the
  release) followed by the folded solution, and hold no hidden test.

Slow tests (``make test``):

- the setup cell, run where ``stnlib`` is not importable (a virtual environment that shares the
  course environment's packages but not stnlib), clones the local checkout, installs it without
  a second PyTorch, and the notebook then runs top to bottom in fast mode;
- the fast-mode site and the no-solutions site build, and in headless Chromium (Debian's, driven by
  Playwright, as in test_browser.py) every page loads with no console error and no request leaving
  the machine, every image has loaded, the maths is typeset, the navigation reaches all seven
  chapters, the solution toggle opens, the explorer's embedded widget renders, no internal link is
  broken; the no-solutions site holds no solution line anywhere. Screenshots of three pages are kept
  in ``artifacts/site/``.
"""

from __future__ import annotations

import contextlib
import functools
import html
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbgrader.utils import is_grade, is_solution
from nbutils import NOTEBOOKS, ROOT, SOLUTIONS, notebook_paths
from test_browser import CHROMIUM_ARGS, find_chromium

SITE = ROOT / "site"
SCREENSHOTS = ROOT / "artifacts" / "site"
CHAPTERS = [p.parent.name for p in notebook_paths(SOLUTIONS)]


def _load(name: str):
    """Import ``site/<name>.py`` under a private name (``site`` is not a package)."""
    spec = importlib.util.spec_from_file_location(f"stn_site_{name}", SITE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(SITE))  # build.py imports launch.py
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SITE))
    return module


launch = _load("launch")
site_build = _load("build")
COURSE = launch.load_course()


def _launch_cells(path: Path) -> tuple[int, list]:
    nb = nbformat.read(path, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    assert launch.LINKS_ID in ids and launch.SETUP_ID in ids, (
        f"{path.name} has no launch cells: run `make launch-cells`"
    )
    at = ids.index(launch.LINKS_ID)
    return at, nb.cells


# --------------------------------------------------------------------------- launch cells


@pytest.mark.parametrize("path", notebook_paths(SOLUTIONS) + notebook_paths(NOTEBOOKS), ids=lambda p: p.parent.name)
def test_every_notebook_has_the_launch_cells_of_the_config(path):
    at, cells = _launch_cells(path)
    expected = launch.launch_cells(COURSE, path.parent.name)
    assert cells[at + 1].get("id") == launch.SETUP_ID, "the setup cell must follow the launch links"
    for got, want in zip(cells[at : at + 2], expected):
        assert (got.cell_type, got.source) == (want.cell_type, want.source), (
            f"{path.relative_to(ROOT)}: the launch cells differ from what site/launch.py writes from "
            "site/course.json: run `make launch-cells` (python site/launch.py, then make release)"
        )
    first_code = next(i for i, c in enumerate(cells) if c.cell_type == "code")
    assert first_code == at + 1, "the setup cell must be the notebook's first code cell"
    assert COURSE.colab_url(launch.student_path(path.parent.name)) in cells[at].source


def test_readme_launch_links_match_the_config():
    text = (ROOT / "README.md").read_text()
    assert launch.readme_block(COURSE) in text, "README.md's launch links are out of date: run python site/launch.py"
    assert launch.sync(COURSE, write=False) == [], "site/launch.py --check finds something out of date"


def test_launch_script_is_idempotent_and_places_the_cells_before_the_first_code_cell(tmp_path):
    source = tmp_path / "solutions"
    for path in notebook_paths(SOLUTIONS)[:2]:
        nb = nbformat.read(path, as_version=4)
        nb.cells = [c for c in nb.cells if c.get("id") not in (launch.LINKS_ID, launch.SETUP_ID)]
        (source / path.parent.name).mkdir(parents=True)
        (source / path.parent.name / path.name).write_text(nbformat.writes(nb) + "\n")
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nIntro.\n\n## Quick start\n\nmake lab\n")
    assert len(launch.sync(COURSE, write=True, source=source, readme=readme)) == 3
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert launch.sync(COURSE, write=True, source=source, readme=readme) == [], "a second run changed something"
    assert snapshot == {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for path in launch.notebook_paths(source):
        at, cells = _launch_cells(path)
        assert all(c.cell_type == "markdown" for c in cells[:at]), "the launch cells must come before any code cell"
    # A changed config rewrites the cells in place.
    fork = launch.Course(**{**COURSE.__dict__, "repository": "https://github.com/someone/their-fork"})
    assert len(launch.sync(fork, write=True, source=source, readme=readme)) == 3
    for path in launch.notebook_paths(source):
        at, cells = _launch_cells(path)
        assert "github.com/someone/their-fork" in cells[at + 1].source
        assert "someone/their-fork/blob/main/notebooks" in cells[at].source
    assert "someone/their-fork" in readme.read_text() and readme.read_text().count(launch.README_BEGIN) == 1


def test_course_config_names_a_github_repository(tmp_path):
    bad = json.loads((SITE / "course.json").read_text())
    bad["repository"] = "https://gitlab.com/someone/stn"
    (tmp_path / "course.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="'repository' must be https://github.com/<owner>/<name>"):
        launch.load_course(tmp_path / "course.json")


# --------------------------------------------------------------------------- the notebooks the site renders


@pytest.mark.parametrize("path", notebook_paths(SOLUTIONS), ids=lambda p: p.parent.name)
def test_site_notebook_shows_stub_check_and_folded_solution_but_no_hidden_test(path):
    nb = site_build.site_notebook(path, COURSE, set(CHAPTERS))
    student = nbformat.read(NOTEBOOKS / path.relative_to(SOLUTIONS), as_version=4)
    student_stubs = {c.id: c.source for c in student.cells if c.cell_type == "code" and is_solution(c)}
    text = nbformat.writes(nb)
    for marker in ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN SOLUTION", "END SOLUTION", launch.REPO_ENV):
        assert marker not in text, f"the site's {path.name} contains {marker!r}"
    hidden = []
    for cell in nbformat.read(path, as_version=4).cells:
        for block in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, flags=re.S):
            hidden += [line.strip() for line in block.splitlines() if line.strip()]
    assert not [line for line in hidden if line in text], "a hidden test line reached the site's notebook"
    solutions = [i for i, c in enumerate(nb.cells) if "stn-solution" in c.metadata.get("tags", [])]
    assert solutions and len(solutions) == len(student_stubs)
    for i in solutions:
        stub, solution = nb.cells[i - 1], nb.cells[i]
        assert "hide-input" in solution.metadata.tags and "skip-execution" in stub.metadata.tags
        assert solution.metadata.mystnb["code_prompt_show"] == "Show the solution"
        assert stub.source == student_stubs[solution.id], f"the stub of {solution.id} is not the student's cell"
        assert "NotImplementedError" in stub.source and "NotImplementedError" not in solution.source
    checks = [c for c in nb.cells if "stn-check" in c.metadata.get("tags", [])]
    assert checks and all(is_grade(c) and not is_solution(c) for c in checks)
    title = next(c for c in nb.cells if c.cell_type == "markdown")
    assert (
        "badge-colab.svg" in title.source and COURSE.binder_url(launch.student_path(path.parent.name)) in title.source
    )


def test_site_index_follows_the_readme_outline():
    text = site_build.index_markdown((ROOT / "README.md").read_text(), CHAPTERS, fast=True, solutions=True)
    linked = re.findall(r"\]\(([^/)]+)/\1\.ipynb\)", text)
    assert linked == CHAPTERS
    assert "fast mode" in text and "notebooks/" not in text
    with pytest.raises(ValueError, match="README's outline lists"):
        site_build.index_markdown((ROOT / "README.md").read_text(), CHAPTERS[::-1], fast=True, solutions=True)


def test_links_that_leave_the_chapters_point_at_the_repository():
    fix = functools.partial(site_build._retarget_links, course=COURSE, chapters=set(CHAPTERS))
    assert fix("[02](../02_normalised_coordinates/02_normalised_coordinates.ipynb)") == (
        "[02](../02_normalised_coordinates/02_normalised_coordinates.ipynb)"
    )
    assert fix("[guide](../../docs/instructor-guide.md#grading)") == (
        f"[guide]({COURSE.repository}/blob/{COURSE.branch}/docs/instructor-guide.md#grading)"
    )
    assert fix("[paper](https://arxiv.org/abs/1506.02025) and [top](#summary)") == (
        "[paper](https://arxiv.org/abs/1506.02025) and [top](#summary)"
    )


# --------------------------------------------------------------------------- the setup cell, offline


def _site_packages(prefix: Path) -> Path:
    return prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


@pytest.mark.slow
def test_setup_cell_installs_the_course_where_stnlib_is_missing(tmp_path):
    """Colab's situation, offline: PyTorch and the rest are there, stnlib is not."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout of the course")
    course_sp = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_relative_to(sys.prefix)))
    # A venv without pip or stnlib; a .pth adds a folder of links to every package of the course
    # environment except stnlib's editable install (.pth files in a folder added that way are not run).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    shared = tmp_path / "course-packages"
    shared.mkdir()
    for entry in course_sp.iterdir():
        if "stnlib" in entry.name.lower() or entry.suffix == ".pth":
            continue
        (shared / entry.name).symlink_to(entry)
    own = _site_packages(venv)
    (own / "course-packages.pth").write_text(f"{shared}\n")
    python = venv / "bin" / "python"
    probe = "import importlib.util as u, torch; print(u.find_spec('stnlib') is None, torch.__version__)"
    found = subprocess.run([python, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert found.stdout.startswith("True"), f"stnlib is importable in the test environment: {found.stdout}"

    # The repository the cell clones: this checkout's commit, on the config's branch, in a bare repo.
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(origin)], check=True)
    subprocess.run(["git", "-C", str(origin), "config", "receive.shallowUpdate", "true"], check=True)
    subprocess.run(
        ["git", "-C", str(ROOT), "push", "--quiet", str(origin), f"HEAD:refs/heads/{COURSE.branch}"], check=True
    )

    # The notebook: the first chapter as learners get it in Colab, plus a cell that says where stnlib came from.
    run = tmp_path / "run"
    run.mkdir()
    nb = nbformat.read(SOLUTIONS / CHAPTERS[0] / f"{CHAPTERS[0]}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import stnlib\nprint('stnlib from', stnlib.__file__)"))
    nbformat.write(nb, run / "chapter.ipynb")
    kernels = tmp_path / "jupyter" / "kernels" / "course-test"
    kernels.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernels / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "test", "language": "python"}))
    runner = (
        "import nbformat, sys\n"
        "from nbclient import NotebookClient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "NotebookClient(nb, timeout=600, kernel_name='course-test', resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "nbformat.write(nb, sys.argv[1])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "JUPYTER"))}
    env.update(
        {
            "STN_FAST": "1",
            "STN_COURSE_REPO": origin.as_uri(),
            "JUPYTER_PATH": str(tmp_path / "jupyter"),
            "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
            "PIP_NO_INDEX": "1",  # offline: pip may only use what the environment has
            "PIP_NO_BUILD_ISOLATION": "0",  # build with the shared setuptools, download nothing
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PYTHONNOUSERSITE": "1",
            "MPLBACKEND": "Agg",
        }
    )
    done = subprocess.run(
        [python, "-c", runner, str(run / "chapter.ipynb"), str(run)],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (
        f"the notebook did not run top to bottom:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    )

    ran = nbformat.read(run / "chapter.ipynb", as_version=4)
    setup = next(c for c in ran.cells if c.get("id") == launch.SETUP_ID)
    said = "".join(o.get("text", "") for o in setup.outputs if o.output_type == "stream" and o.name == "stdout")
    assert said.count("\n") == 1 and said.startswith("stnlib is not installed here: installing the course from"), said
    clone = run / COURSE.folder
    last = "".join(o.get("text", "") for o in ran.cells[-1].outputs)
    assert f"stnlib from {clone / 'stnlib' / '__init__.py'}" in last
    installed = sorted(p.name for p in own.iterdir())
    assert any("stnlib" in name for name in installed), f"no stnlib install in the venv: {installed}"
    assert not any(name.startswith(("torch", "nvidia")) for name in installed), (
        f"PyTorch was installed again: {installed}"
    )
    assert all(c.execution_count for c in ran.cells if c.cell_type == "code"), "not every cell ran"
    # A second kernel (a restart in Colab) imports the editable install without the path tweak.
    again = subprocess.run(
        [python, "-c", "import stnlib; print(stnlib.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert again.stdout.strip() == str(clone / "stnlib" / "__init__.py")


# --------------------------------------------------------------------------- the site in a browser

DEADLINE_S = 900  # the builds and the browser checks together (about 2.5 min of CPU on an idle machine)


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) in a thread; yield the base URL; always stop."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _text_of(path: Path) -> str:
    """What a reader can find in a file: tags removed, entities resolved, whitespace collapsed."""
    text = path.read_text(errors="replace")
    if path.suffix == ".html":
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return re.sub(r"\s+", " ", text)


def solution_lines() -> list[str]:
    """Code lines only the solution regions hold: longer than 12 characters, and not found anywhere
    a student can read anyway (a hint in a comment or in the markdown may quote a first step)."""
    solution, public = [], []
    pattern = r"### BEGIN SOLUTION\n(.*?)### END SOLUTION"
    for path in notebook_paths(SOLUTIONS):
        for cell in nbformat.read(path, as_version=4).cells:
            for block in re.findall(pattern, cell.source, flags=re.S):
                solution += [re.sub(r"\s+", " ", line.strip()) for line in block.splitlines() if len(line.strip()) > 12]
            public.append(re.sub(r"\s+", " ", re.sub(pattern, "", cell.source, flags=re.S)))
    public_text = "\n".join(public)
    return [line for line in solution if line not in public_text and not line.startswith("#")]


def leaked(html_dir: Path, lines: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in html_dir.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".js", ".txt", ".json", ".ipynb", ".md", ".py"}:
            text = _text_of(path)
            hits = [line for line in lines if line in text]
            if hits:
                found[str(path.relative_to(html_dir))] = hits
    return found


def check_pages(page, base: str, deadline: float, requests_out: list[str], *, solutions: bool) -> dict[str, int]:
    """Load the index and every chapter; return the number of figures per chapter."""
    errors: list[str] = []
    page.on(
        "console",
        lambda msg: errors.append(f"{page.url}: console.{msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: page error: {exc}"))

    def ms() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the site test ran past its {DEADLINE_S} s deadline")
        return min(left, 60) * 1000

    # Navigation: from the front page, the sidebar reaches every chapter.
    page.goto(f"{base}/index.html", wait_until="load", timeout=ms())
    nav = page.locator("nav.bd-docs-nav a.reference.internal")
    hrefs = [h.split("#")[0] for h in nav.evaluate_all("els => els.map(e => e.getAttribute('href'))")]
    listed = [h for h in hrefs if re.match(r"\d\d_", h)]
    assert listed == [f"{c}/{c}.html" for c in CHAPTERS], f"the sidebar does not list the chapters in order: {hrefs}"
    figures: dict[str, int] = {}
    for chapter in CHAPTERS:
        page.locator("nav.bd-docs-nav a.reference.internal", has_text=chapter[:2] + " ·").first.click(timeout=ms())
        page.wait_for_url(f"**/{chapter}/{chapter}.html", timeout=ms())
        page.wait_for_load_state("load", timeout=ms())
        assert page.locator("h1").first.inner_text().startswith(chapter[:2]), f"{chapter}: wrong page"
        # Every image has loaded (natural width > 0), the figures of the outputs among them.
        page.wait_for_function("() => Array.from(document.images).every(i => i.complete)", timeout=ms())
        broken = page.evaluate(
            "() => Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.getAttribute('src'))"
        )
        assert not broken, f"{chapter}: images that did not load: {broken}"
        figures[chapter] = page.locator("div.cell_output img").count()
        # Maths: every page with TeX in it typesets it (MathJax from the site's own _static).
        if page.locator("span.math, div.math").count():
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('span.math, div.math'))"
                ".every(e => e.querySelector('mjx-container'))",
                timeout=ms(),
            )
        # The launch buttons under the title.
        badges = page.locator("p.stn-launch a:has(img)")
        assert badges.count() == 2 and "colab.research.google.com" in badges.first.get_attribute("href")
    # The solutions toggle opens (chapter 01's first exercise) and shows the solution's code.
    page.goto(f"{base}/{CHAPTERS[0]}/{CHAPTERS[0]}.html", wait_until="load", timeout=ms())
    stubs = page.locator("div.cell.tag_stn-stub")
    assert stubs.count() > 0 and "NotImplementedError" in stubs.first.inner_text()
    solution = page.locator("div.cell.tag_stn-solution")
    if solutions:
        code = solution.first.locator("div.cell_input")
        assert not code.is_visible(), "the solution is not folded"
        solution.first.locator("summary").click(timeout=ms())
        code.wait_for(state="visible", timeout=ms())
        assert "def " in code.inner_text() and "NotImplementedError" not in code.inner_text()
    else:
        assert solution.count() == 0 and page.get_by_text("Show the solution").count() == 0
    # The explorer's saved state renders as widgets, without a kernel.
    page.goto(f"{base}/04_theta_explorer/04_theta_explorer.html", wait_until="load", timeout=ms())
    page.wait_for_selector(".stn-theta-explorer", timeout=ms())
    assert page.locator(".stn-theta-explorer .widget-slider").count() >= 12, "the explorer's sliders did not render"
    page.wait_for_function(
        "() => { const i = document.querySelector('.stn-theta-explorer img'); return i && i.naturalWidth > 0; }",
        timeout=ms(),
    )
    assert not errors, "the browser console showed errors:\n" + "\n".join(errors)
    assert not requests_out, f"requests left the machine: {sorted(set(requests_out))}"
    return figures


def check_internal_links(html_dir: Path, base: str) -> None:
    """Every relative href/src of every page resolves to a file, and every #fragment to an id on its page."""
    ids: dict[str, set[str]] = {}
    broken = []
    pages = sorted(p for p in html_dir.rglob("*.html") if "_static" not in p.parts)
    for path in pages:
        text = path.read_text()
        ids[path.relative_to(html_dir).as_posix()] = set(re.findall(r'\bid="([^"]+)"', text))
    for path in pages:
        here = path.relative_to(html_dir).as_posix()
        for link in re.findall(r'\b(?:href|src)="([^"]+)"', path.read_text()):
            link = html.unescape(link)
            if re.match(r"^[a-z][a-z0-9+.-]*:", link) or link.startswith("//"):
                continue
            target, _, fragment = link.partition("#")
            target = urllib.parse.urljoin(here, target.split("?")[0]) if target else here
            if not (html_dir / target).is_file():
                broken.append(f"{here}: {link} (no file {target})")
            elif fragment and target.endswith(".html") and urllib.parse.unquote(fragment) not in ids.get(target, set()):
                broken.append(f"{here}: {link} (no id {fragment!r} in {target})")
    assert not broken, "broken internal links:\n" + "\n".join(broken[:20])
    with urllib.request.urlopen(f"{base}/index.html", timeout=10) as resp:  # and the server serves them
        assert resp.status == 200


def only_loopback(base: str, blocked: list[str]):
    """A Playwright route handler: requests to the test's server go through, any other is recorded and aborted."""

    def handle(route):
        url = route.request.url
        if url.startswith(f"{base}/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    return handle


@pytest.mark.slow
def test_site_builds_and_works_offline_in_a_browser(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found: install it (Debian: apt-get install chromium) or set STN_CHROMIUM")
    if shutil.which("npm") is None:
        pytest.skip("the site fetches MathJax and the widget manager with npm (Debian: apt-get install npm)")
    deadline = time.monotonic() + DEADLINE_S
    started = time.monotonic()
    full = site_build.build(fast=True, out=tmp_path / "fast", quiet=True, timeout=DEADLINE_S - 120)
    left = deadline - time.monotonic() - 60
    bare = site_build.build(fast=True, solutions=False, out=tmp_path / "nosolutions", quiet=True, timeout=left)
    built_s = time.monotonic() - started
    for html_dir in (full, bare):
        pages = [html_dir / c / f"{c}.html" for c in CHAPTERS]
        assert all(p.is_file() for p in pages), "a chapter page is missing"
        assert all("Fast-mode build" in p.read_text() for p in [*pages, html_dir / "index.html"]), "no fast banner"

    # No solution in the no-solutions site; the same search finds them in the full one.
    lines = solution_lines()
    assert len(lines) > 20
    assert leaked(full, lines), "the solutions site shows no solution: the leak check would see nothing"
    assert not leaked(bare, lines), f"solution code in the no-solutions site: {leaked(bare, lines)}"
    assert "tag_stn-solution" not in "".join(p.read_text() for p in bare.rglob("*.html"))
    assert not list(bare.rglob("*.ipynb")), "notebook sources in the no-solutions site"

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            for html_dir, name in ((full, "fast"), (bare, "nosolutions")):
                with serve(html_dir) as base:
                    check_internal_links(html_dir, base)
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    requests_out: list[str] = []
                    context.route("**/*", only_loopback(base, requests_out))
                    page = context.new_page()
                    figures = check_pages(page, base, deadline, requests_out, solutions=name == "fast")
                    if name == "fast":
                        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                        for chapter in ("index", "04_theta_explorer", "05_train_an_stn"):
                            url = f"{base}/index.html" if chapter == "index" else f"{base}/{chapter}/{chapter}.html"
                            page.goto(url, wait_until="load")
                            page.screenshot(path=str(SCREENSHOTS / f"{chapter}.png"))
                        print(f"figures per chapter: {figures}; both builds took {built_s:.0f} s")
                    context.close()
        finally:
            browser.close()
