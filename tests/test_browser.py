"""The theta explorer in a real browser: JupyterLab + Chromium driven by Playwright (notebook 04).

The test starts JupyterLab on 127.0.0.1 (a free port, a random token, a throw-away root folder
holding a copy of notebook 04, throw-away settings), opens the notebook in headless Chromium,
runs all cells, drags the rotation slider of the explorer and checks that

- the explorer's picture and its theta panel change (the kernel answered the slider),
- the browser console shows no errors (and the page raised none).

A screenshot is kept as ``artifacts/browser/theta_explorer.png`` (``artifacts/`` is not tracked).

It needs the Python package ``playwright`` and a Chromium binary; it does **not** download a
browser: it uses ``$STN_CHROMIUM`` or the system's ``chromium`` (Debian: ``apt-get install
chromium``), and skips with the reason when either is missing. The whole test is bounded by
:data:`DEADLINE_S`; JupyterLab and its kernels are always shut down.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "solutions" / "04_theta_explorer" / "04_theta_explorer.ipynb"
SCREENSHOT = ROOT / "artifacts" / "browser" / "theta_explorer.png"
DEADLINE_S = 420  # the whole test, start to finish
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow

# JupyterLab user settings for the test: no windowing (every cell stays in the page, so the
# widget output exists even when off-screen), no autosave, no news or update checks, no
# extension manager (all of these would reach for the network or change files).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}


def find_chromium() -> str | None:
    """The Chromium to drive: ``$STN_CHROMIUM``, else ``chromium`` / ``chromium-browser`` on PATH."""
    candidates = [os.environ.get("STN_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Deadline:
    """Seconds left until the test's deadline; raises when it has passed."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the browser test ran past its {DEADLINE_S} s deadline")
        return min(left, cap) if cap else left

    def ms(self, cap_s: float) -> float:
        return self.left(cap_s) * 1000


@contextlib.contextmanager
def jupyterlab(root: Path, deadline: Deadline):
    """Run JupyterLab on 127.0.0.1 with a token; yield its base URL and token; always stop it."""
    port, token = free_port(), secrets.token_hex(16)
    settings = root / ".lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ)
    env.update(
        {
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-workspaces"),
            "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
            "STN_FAST": "1",  # the notebook's fast mode, as in CI
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
    )
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=",
        "--LabApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--ServerApp.allow_root=True")
    log = (root / "jupyterlab.log").open("w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                log_text = (root / "jupyterlab.log").read_text()
                raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log_text}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - started > min(90.0, deadline.left()):
                raise TimeoutError(f"JupyterLab did not answer within 90 s:\n{(root / 'jupyterlab.log').read_text()}")
            time.sleep(0.5)
        yield base, token
    finally:
        # The server runs in its own session: stop it and the kernels it started, then make sure.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any kernel left in the session
        log.close()


PROMPTS_JS = """() => Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))
                      .map(e => e.textContent.trim())"""


def kernel_idle(page, deadline: Deadline, cap_s: float = 120) -> None:
    """Wait until the status bar says the kernel is idle (it says "Initializing" before)."""
    page.wait_for_function(
        "() => (document.querySelector('#jp-main-statusbar') || {}).textContent?.includes('| Idle')",
        timeout=deadline.ms(cap_s),
    )


def run_all_cells(page, deadline: Deadline) -> None:
    """Run every cell from the Run menu and wait until each code cell has an execution count."""
    for _attempt in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        clicked = time.monotonic()
        while True:
            prompts = page.evaluate(PROMPTS_JS)
            if prompts and all(p.startswith("[") and p[1:-2].strip().isdigit() for p in prompts):
                return
            if all(p == "[ ]:" for p in prompts) and time.monotonic() - clicked > 20:
                break  # nothing started: the click was lost, try again
            if deadline.left() < 30:
                raise TimeoutError(f"cells still running or not run at the deadline: {prompts}")
            page.wait_for_timeout(500)
    raise RuntimeError("Run > Run All Cells did not start the cells (3 tries)")


def test_theta_explorer_in_jupyterlab(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found: install it (Debian: apt-get install chromium) or set STN_CHROMIUM")
    deadline = Deadline(DEADLINE_S)
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    errors: list[str] = []

    with jupyterlab(tmp_path, deadline) as (base, token), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS, timeout=deadline.ms(60)
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on(
                "console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None
            )
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", timeout=deadline.ms(90))
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=deadline.ms(90))
            kernel_idle(page, deadline)

            run_all_cells(page, deadline)

            explorer = page.locator(".stn-theta-explorer").first
            explorer.wait_for(state="visible", timeout=deadline.ms(30))
            explorer.scroll_into_view_if_needed(timeout=deadline.ms(10))
            picture = explorer.locator("img.stn-explorer-view")
            matrix = explorer.locator(".stn-explorer-matrix")
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=picture.element_handle(), timeout=deadline.ms(30)
            )
            # The notebook's last cell sent the recovered theta to the explorer (raw mode); go back to
            # the parameter sliders and the identity.
            explorer.locator("button", has_text="parameters").click()
            rotation = explorer.locator(".widget-slider", has_text="rotation").first
            rotation.wait_for(state="visible", timeout=deadline.ms(30))  # the parameter sliders are back
            identity = "el => el.textContent.includes('+1.00  +0.00  +0.00')"
            for attempt in range(2):
                # On a loaded CI machine a click sent while the kernel still answers the previous one
                # has once gone unanswered for 30 s (1 of 3 clean-clone runs); a second click is what a
                # learner would do, and a reset that never works still fails.
                explorer.locator("button", has_text="reset to identity").click()
                try:
                    page.wait_for_function(identity, arg=matrix.element_handle(), timeout=deadline.ms(30))
                    break
                except sync_api.TimeoutError:
                    if attempt == 1:
                        raise
            src_before = picture.get_attribute("src")
            pixels_before = picture.screenshot(timeout=deadline.ms(10))

            # Drag the rotation slider's handle to the right, as a learner would.
            slider = explorer.locator(".widget-slider", has_text="rotation").first
            handle = slider.locator(".noUi-handle").first
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 + 40, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()

            readout = slider.locator(".widget-readout").first.inner_text().strip()
            assert readout not in ("0", "-0"), f"the rotation slider did not move (readout {readout!r})"
            # Dragging sends several values (continuous_update); wait for the kernel's answer to the last.
            expected = f"rotation {float(readout):+.1f}°"
            page.wait_for_function(
                "([el, text]) => el.innerText.includes(text)",
                arg=[matrix.element_handle(), expected],
                timeout=deadline.ms(30),
            )
            assert picture.get_attribute("src") != src_before, "the picture was not replaced"
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=picture.element_handle(), timeout=deadline.ms(30)
            )
            assert picture.screenshot(timeout=deadline.ms(10)) != pixels_before, "the picture did not change"

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            explorer.scroll_into_view_if_needed(timeout=deadline.ms(10))
            page.screenshot(path=str(SCREENSHOT), timeout=deadline.ms(20))
        finally:
            browser.close()

    assert not errors, "the browser console showed errors:\n" + "\n".join(errors)
