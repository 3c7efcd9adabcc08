"""The notebooks users open first run headless from a clean kernel (python3-nbclient and
python3-ipykernel, as notebooks/execute.py runs them); a cell error fails the test. The committed
copies carry the outputs of such a run, so they read well in a browser."""
import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["fpga_vs_pytorch.ipynb", "expert_routing.ipynb"]


def _executor():
    spec = importlib.util.spec_from_file_location("notebook_execute", NOTEBOOKS / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_without_a_cell_error(name, tmp_path):
    out = tmp_path / name
    _executor().execute(NOTEBOOKS / name, out)  # nbclient raises CellExecutionError on a failing cell
    notebook = nbformat.read(out, as_version=4)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was drawn"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_names_the_edgemoe_kernel(name):
    """Opened in Jupyter, a notebook starts the kernel its metadata names: edgemoe's venv, not `python3`."""
    spec = nbformat.read(NOTEBOOKS / name, as_version=4).metadata.kernelspec
    assert spec.name == "edgemoe" and spec.language == "python"


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_carries_its_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs for cell in code), "every code cell has its output"
    assert all(cell.execution_count for cell in code), "executed in order from a fresh kernel"
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
