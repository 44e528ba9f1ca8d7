"""Sphinx configuration of the course site (used by site/build.py: ``sphinx-build -c site/ ...``).

site/build.py writes the sources and sets, in the environment:

- ``STN_FAST``: 1 for the fast (test) build, which then says so on every page;
- ``STN_SITE_SOLUTIONS``: 0 to leave every solution cell out of the pages;
- ``STN_SITE_ASSETS``: the unpacked MathJax and widget manager (served from ``_static/``);
- ``STN_SITE_CACHE``: myst-nb's execution cache (one per ``STN_FAST`` value).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import launch  # noqa: E402  (the course config: title and repository)

COURSE = launch.load_course()
FAST = os.environ.get("STN_FAST", "0") == "1"
SOLUTIONS = os.environ.get("STN_SITE_SOLUTIONS", "1") == "1"
ASSETS = os.environ.get("STN_SITE_ASSETS", "")
CACHE = os.environ.get("STN_SITE_CACHE", str(HERE.parent / "build" / "site" / "cache" / ("fast" if FAST else "full")))
SOLUTION_TAG = "tag_stn-solution"  # the class myst-nb gives a cell tagged stn-solution

project = COURSE.title
author = "the STN from scratch authors"
copyright = "the STN from scratch authors, MIT licence"
language = "en"

extensions = ["myst_nb"]
exclude_patterns = ["**.ipynb_checkpoints"]
myst_enable_extensions = ["dollarmath", "amsmath", "html_image"]
myst_heading_anchors = 3

# Execution: every notebook runs top to bottom; jupyter-cache re-runs only a notebook whose code changed.
nb_execution_mode = "cache"
nb_execution_cache_path = CACHE
nb_execution_timeout = 600 if FAST else 3600  # per cell: full-mode training cells take minutes
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# The widget state saved while executing is embedded; the site's own copy of the widget manager
# (embed.js, ipywidgets 8, no require.js) renders it.
nb_ipywidgets_js = {"jupyter-widgets/embed.js": {}}

html_theme = "sphinx_book_theme"
html_title = COURSE.title
html_static_path = ["_static"] + ([ASSETS] if ASSETS else [])
html_css_files = ["stn-site.css"]
html_copy_source = False  # no notebook sources in the output (with or without solutions)
html_show_sourcelink = False
html_last_updated_fmt = None
mathjax_path = "mathjax/tex-mml-chtml.js"  # served from _static, not a CDN
mathjax3_config = {"tex": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]]}}

owner, name = COURSE.owner_and_name
html_theme_options = {
    "repository_url": COURSE.repository,
    "repository_branch": COURSE.branch,
    "path_to_docs": "notebooks",  # the launch buttons open the student notebook of each page
    "use_repository_button": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "launch_buttons": {
        "colab_url": COURSE.colab,
        "binderhub_url": COURSE.binderhub,
        "notebook_interface": "jupyterlab",
    },
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "navbar_persistent": [],  # one search field (the sidebar's), not a second one in a header bar
}
html_context = {"default_mode": "light"}  # the theme logs a console error when no mode is set
if FAST:
    html_theme_options["announcement"] = (
        "Fast-mode build (STN_FAST=1, for tests): tiny training budgets, so the numbers and figures are "
        "not the course's. <code>make site</code> builds the real one."
    )
elif not SOLUTIONS:
    html_theme_options["announcement"] = "This edition of the course shows no solutions."


def drop_solutions(app, doctree) -> None:
    """Without solutions: remove every solution cell (code and output) before anything is written or indexed."""
    if SOLUTIONS:
        return
    for node in list(doctree.findall(lambda n: SOLUTION_TAG in n.get("classes", []) if hasattr(n, "get") else False)):
        node.parent.remove(node)


def setup(app):
    app.connect("doctree-read", drop_solutions)
