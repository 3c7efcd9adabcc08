"""Execute a notebook headless (python3-nbclient / python3-ipykernel) and write it with its outputs.

    python notebooks/execute.py NOTEBOOK.ipynb [OUT.ipynb]   (OUT defaults to NOTEBOOK: in place)

A cell error fails with the cell's traceback. The kernel is the one the notebooks name and a user
opens them with: "edgemoe", the project's venv, registered by `make kernelspec` (`make notebook`
and `make test` do it) under the venv's share/jupyter/kernels, where a Jupyter run from the venv
finds it. Run this with the venv's python."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

CELL_TIMEOUT = 600  # seconds per cell
KERNEL = "edgemoe"


def kernel_spec_dir() -> str:
    """Where the edgemoe kernel is registered; a clear error when it is not."""
    try:
        return KernelSpecManager().get_kernel_spec(KERNEL).resource_dir
    except NoSuchKernel:
        raise SystemExit(f"no Jupyter kernel named {KERNEL!r} for {sys.executable}: run `make kernelspec` "
                         "(it registers the project's venv as that kernel)") from None


def execute(path: Path, out: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    kernel_spec_dir()
    start = time.perf_counter()
    NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name=KERNEL,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(notebook, out)
    return time.perf_counter() - start


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    source = Path(sys.argv[1])
    target = Path(sys.argv[2]) if len(sys.argv) == 3 else source
    print(f"{source}: executed in {execute(source, target):.1f} s -> {target}")
