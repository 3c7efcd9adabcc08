"""What this build of edgemoe is and which backends it can run, with the reason for each one it cannot."""
from __future__ import annotations

from ._version import __version__

# Every backend edgemoe knows of; those not compiled into this build are reported with why.
KNOWN_BACKENDS = ("cpu", "emu", "fpga")
_NOT_BUILT = {
    "fpga": "not compiled into this build: the XRT host code is not written yet (XRT support itself: see "
            "build 'xrt'; the metadata-only xclbin writer and its noop test are built when XRT is found)",
}


def backend_status() -> dict:
    """{name: {"available": bool, "reason": str}} for every backend edgemoe knows of."""
    from . import _C

    native = {b["name"]: b for b in _C.backends()}
    status = {}
    for name in KNOWN_BACKENDS:
        if name in native:
            status[name] = {"available": native[name]["available"], "reason": native[name]["reason"]}
        else:
            status[name] = {"available": False, "reason": _NOT_BUILT.get(name, "not compiled into this build")}
    return status


def require_backend(name: str) -> None:
    """ValueError for a name edgemoe does not know, RuntimeError saying why for an unavailable one."""
    status = backend_status()
    if name not in status:
        raise ValueError(f"unknown backend {name!r}; edgemoe backends are {list(status)}")
    if not status[name]["available"]:
        raise RuntimeError(f"backend {name!r} is unavailable: {status[name]['reason']}")


def info(print_it: bool = False) -> dict:
    from . import _C

    result = {"version": __version__, "build": dict(_C.build_info()), "backends": backend_status()}
    if print_it:
        print(format_info(result))
    return result


def format_info(result: dict) -> str:
    lines = [f"edgemoe {result['version']}", "build:"]
    lines += [f"  {k}: {v}" for k, v in result["build"].items()]
    lines.append("backends:")
    for name, b in result["backends"].items():
        lines.append(f"  {name}: " + ("available" if b["available"] else f"unavailable - {b['reason']}"))
    return "\n".join(lines)
