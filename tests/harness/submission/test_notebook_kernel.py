"""The generated notebooks run top to bottom in a Jupyter kernel, offline, from their own folder.

Each notebook is written into a temporary folder outside the project and executed there
with nbclient (the kernel's working directory is that folder), with an empty TORCH_HOME and
Python's sockets refused by an IPython start-up file: a download attempt would fail its cell.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from grader.distribute.notebook_text import DEMO_CELLS
from grader.distribute.notebook_writer import execute_notebook, write_notebook
from grader.refdata.weights import STANDIN_CAPTION

pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

OFFLINE_STARTUP = """\
import socket
from pathlib import Path

_LOG = Path({log!r})
_LOG.write_text("guard active\\n")


def _refuse(*args, **kwargs):
    with _LOG.open("a") as f:
        f.write(f"network attempt: {{args!r}}\\n")
    raise OSError("network access is blocked by the lab3 test")


socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
"""


class OfflineKernel:
    """Runs notebooks in ``folder`` with an empty TORCH_HOME and no network."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.torch_home = folder.parent / "empty-torch-home"
        self.torch_home.mkdir()
        self.log = folder.parent / "network.log"
        startup = folder.parent / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-offline.py").write_text(OFFLINE_STARTUP.format(log=str(self.log)))
        self.env = {"TORCH_HOME": str(self.torch_home), "LAB3_WEIGHTS": "auto",
                    "IPYTHONDIR": str(startup.parents[1])}

    def run(self, path: Path, extra_cells: tuple[str, ...] = ()) -> nbformat.NotebookNode:
        """Execute the notebook at ``path``; a cell that raises fails the test."""
        nb = nbformat.read(str(path), as_version=4)
        nb.cells.extend(new_code_cell(source) for source in extra_cells)
        execute_notebook(nb, cwd=self.folder, env=self.env)
        return nb

    def assert_stayed_offline(self) -> None:
        assert self.log.read_text() == "guard active\n"  # the guard ran; nothing tried to connect
        assert list(self.torch_home.iterdir()) == []  # nothing fetched into the hub cache


@pytest.fixture
def kernel(tmp_path: Path) -> OfflineKernel:
    folder = tmp_path / "my-lab"
    folder.mkdir()
    return OfflineKernel(folder)


def text_of(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def demo_cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    by_source = {source: module for module, source in DEMO_CELLS.items()}
    return {by_source[c.source]: c for c in nb.cells if c.source in by_source}


def test_student_notebook_runs_to_the_end_offline_with_every_task_a_stub(
    kernel: OfflineKernel
) -> None:
    path = write_notebook(kernel.folder / "lab3.ipynb")
    figure_check = ("from matplotlib.figure import Figure\n"
                    "probe = Figure()\nshow(probe)\nprint(probe._suptitle.get_text())")
    nb = kernel.run(path, extra_cells=(figure_check,))
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert text_of(setup).startswith("weights: stand-in ResNet-34")
    demos = demo_cells(nb)
    assert set(demos) == set(DEMO_CELLS)
    for module, cell in demos.items():
        text = text_of(cell)
        assert "not implemented yet: Task" in text or "skipped: this demo needs" in text, (module, text)
    assert "needs `model` from the demo of Task 1" in text_of(demos["inference"])
    assert text_of(nb.cells[-1]).strip() == STANDIN_CAPTION  # show() labels stand-in figures
    kernel.assert_stayed_offline()


@pytest.mark.slow  # about 20 s: every demo of the reference solution, at demo settings
def test_reference_solution_notebook_runs_clean_offline_with_figures(kernel: OfflineKernel) -> None:
    path = write_notebook(kernel.folder / "lab3.ipynb", reference=True)
    nb = kernel.run(path)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.get("name") == "stderr"], "warnings in the notebook"
    demos = demo_cells(nb)
    assert all("not implemented" not in text_of(c) and "skipped" not in text_of(c)
               for c in demos.values())
    figures = [m for m in ("filters", "attribution_viz", "comparison")
               if any("image/png" in o.get("data", {}) for o in demos[m].outputs)]
    assert figures == ["filters", "attribution_viz", "comparison"]
    assert (kernel.folder / "resnet34_torchvision_graph.png").exists() or \
        (kernel.folder / "resnet34_torchvision_graph.dot").exists()  # Task 4 wrote beside it
    kernel.assert_stayed_offline()
