"""Execute a notebook headless (python3-nbclient / python3-ipykernel) and write it with its outputs.

    python notebooks/execute.py NOTEBOOK.ipynb [OUT.ipynb]   (OUT defaults to NOTEBOOK: in place)

A cell error fails with the cell's traceback. The kernel is the Python running this script (the
venv with edgemoe installed), not the system's python3 kernel."""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

CELL_TIMEOUT = 600  # seconds per cell


def execute(path: Path, out: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as specs:
        spec = Path(specs, "python3")
        spec.mkdir()
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3", "language": "python"}))
        km = KernelManager(kernel_name="python3",
                           kernel_spec_manager=KernelSpecManager(kernel_dirs=[specs], ensure_native_kernel=False))
        NotebookClient(notebook, km=km, timeout=CELL_TIMEOUT, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(notebook, out)
    return time.perf_counter() - start


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    source = Path(sys.argv[1])
    target = Path(sys.argv[2]) if len(sys.argv) == 3 else source
    print(f"{source}: executed in {execute(source, target):.1f} s -> {target}")
