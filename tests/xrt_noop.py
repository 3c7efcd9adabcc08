"""XRT's noop shim for tests (shared/spec/xrt.md §6): XILINX_XRT at a root whose lib/ is Debian's
library directory, XCL_EMULATION_MODE=noop, and the metadata-only xclbin edgemoe writes."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from edgemoe import _C

XRT_LIBDIR = _C.build_info()["xrt_library_dir"]


def noop_root(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "lib").exists():
        (path / "lib").symlink_to(XRT_LIBDIR)
    return str(path)


@contextlib.contextmanager
def noop_environment(workdir: Path):
    """Yields the path of a good noop xclbin, with the environment set for XRT's noop shim."""
    saved = {k: os.environ.get(k) for k in ("XILINX_XRT", "XCL_EMULATION_MODE", "EDGEMOE_XCLBIN")}
    os.environ["XILINX_XRT"] = noop_root(workdir / "root")
    os.environ["XCL_EMULATION_MODE"] = "noop"
    os.environ.pop("EDGEMOE_XCLBIN", None)
    xclbin = workdir / "m3vit_backbone.noop.xclbin"
    xclbin.write_bytes(_C.metadata_xclbin())
    try:
        yield str(xclbin)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
