"""benchmarks/notebook_times.py: each run gets the thread count and a fresh artifacts folder, the busy processes
run during the runs and are stopped after, and the times come out side by side."""

from __future__ import annotations

import importlib.util
import json
import os

import nbformat
import pytest
from nbutils import ROOT

spec = importlib.util.spec_from_file_location("notebook_times", ROOT / "benchmarks" / "notebook_times.py")
notebook_times = importlib.util.module_from_spec(spec)
spec.loader.exec_module(notebook_times)


def test_names_resolve_to_the_instructor_notebooks():
    assert notebook_times.notebook_path("06") == ROOT / "solutions" / "06_experiments" / "06_experiments.ipynb"
    with pytest.raises(ValueError, match="--notebooks: '0' names 7 notebooks"):
        notebook_times.notebook_path("0")


def test_busy_processes_spin_and_stop():
    with notebook_times.Busy(2) as busy:
        processes = list(busy.processes)
        assert len(processes) == 2 and all(p.is_alive() for p in processes)
    assert not any(p.is_alive() for p in processes)


@pytest.mark.slow
def test_a_run_sees_its_settings(tmp_path, capsys):
    """A tiny notebook records what the script set up for it: torch's threads, STN_FAST and the artifacts folder."""
    probe = tmp_path / "probe.ipynb"
    record = tmp_path / "seen.jsonl"
    code = (
        "import json, os, torch\n"
        "from stnlib.config import THREADS\n"
        "torch.set_num_threads(THREADS)\n"
        "folder = os.environ['STN_ARTIFACTS_DIR']\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "    f.write(json.dumps([torch.get_num_threads(), os.environ.get('STN_FAST'), folder, os.listdir(folder)]) + '\\n')\n"
        "open(os.path.join(folder, 'checkpoint.pt'), 'w').close()  # a run leaves a checkpoint behind"
    )
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), probe)
    out = tmp_path / "times.json"
    argv = ["--notebooks", str(probe), "--threads", "1", "2", "--busy", "1", "--out", str(out), "--save", str(tmp_path)]
    result = notebook_times.main(argv)
    assert (tmp_path / "probe-2thr.ipynb").is_file() and (tmp_path / "probe-1thr.ipynb").is_file()
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert [s[0] for s in seen] == [1, 2]  # the thread count reached torch in the kernel
    assert all(s[1] is None for s in seen)  # full mode
    assert seen[0][2] != seen[1][2] and all(s[3] == [] for s in seen)  # a fresh, empty artifacts folder each run
    assert not any(os.path.exists(s[2]) for s in seen)  # and removed after
    assert [r["threads"] for r in result["rows"]] == [1, 2] and json.loads(out.read_text())["settings"]["busy"] == 1
    table = capsys.readouterr().out
    assert "wall time (s), 1 busy processes" in table and table.splitlines()[-2].startswith("probe")
