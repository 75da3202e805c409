"""notebooks/kshock-tour.ipynb runs top to bottom against a real lab (so it cannot rot), within
about a minute, and leaves nothing behind; what it claims holds by the clients' own records (their
reports and their client library's logs, read here). The committed notebook carries no outputs."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from conftest import kshock, lab_namespaces, unique_lab_name
from test_demo import ClientRecords

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "kshock-tour.ipynb"


def test_committed_notebook_has_no_outputs():
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[test]')")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_tour_notebook_executes(lab_environment, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[test]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[test]')")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[test]')")
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install -e '.[test]')")
    name = unique_lab_name()
    monkeypatch.setenv("KSHOCK_TOUR_LAB", name)
    monkeypatch.setenv("KSHOCK_TOUR_DIR", str(tmp_path / "tour"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend makes the images
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    started = time.monotonic()
    try:
        nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    finally:
        kshock("lab", "down", "--name", name)  # only does something when the notebook failed half-way
    elapsed = time.monotonic() - started
    assert elapsed < 90, f"the notebook took {elapsed:.0f} s"
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) == 3  # rates with the fault window, latency per API, rule hit counters
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "acks inside the window, by the producers' own logs: shop-frontend 0, billing" in text
    # The claim, by the producers' own records: no ack for shop-frontend while the fault held (after
    # half a second for answers already on their way), billing's went on; nothing lost.
    window = re.search(r"fault window: ([\d.]+) \.\. ([\d.]+)", text)
    start, end = float(window[1]) + 0.5, float(window[2])
    folder = tmp_path / "tour" / "workloads"
    shop, billing = ClientRecords(folder, "shop-frontend"), ClientRecords(folder, "billing")
    assert shop.received("Produce", start, end) == [] and shop.received("Produce", 0, start)
    assert billing.received("Produce", start, end)
    assert max(shop.received("Produce", end)) > 1000 * (end - start)  # the blocked request waited it out
    assert shop.report["produced"]["orders"] > 0 and shop.errors() == []
    assert billing.report["produced"]["payments"] > 0 and billing.errors() == []
    assert lab_namespaces(name) == []
    assert not list(Path(os.environ.get("KSHOCK_RUN_DIR", "/run/kshock"), "faults").glob(f"netns-ksl-{name}-*/*.json"))
