"""What this build of edgemoe is and which backends it can run, with the reason for each one it cannot."""
from __future__ import annotations

import os

from ._version import __version__

# Every backend edgemoe knows of. The native registry lists each, with why when it cannot run
# (fpga without XRT included); one missing from it was not compiled in at all.
KNOWN_BACKENDS = ("cpu", "emu", "fpga")


def backend_status() -> dict:
    """{name: {"available": bool, "reason": str}} for every backend edgemoe knows of."""
    from . import _C

    native = {b["name"]: b for b in _C.backends()}
    status = {}
    for name in KNOWN_BACKENDS:
        if name in native:
            status[name] = {"available": native[name]["available"], "reason": native[name]["reason"]}
        else:
            status[name] = {"available": False, "reason": "not compiled into this build"}
    return status


def require_backend(name: str) -> None:
    """ValueError for a name edgemoe does not know, RuntimeError saying why for an unavailable one."""
    status = backend_status()
    if name not in status:
        raise ValueError(f"unknown backend {name!r}; edgemoe backends are {list(status)}")
    if not status[name]["available"]:
        raise RuntimeError(f"backend {name!r} is unavailable: {status[name]['reason']}")


def info(print_it: bool = False, devices: bool = False) -> dict:
    """Version, build options and backends. For an available backend, "reason" notes what it needs at
    run time (fpga: the XRT runtime the environment provides), found without touching a device.
    ``devices=True`` also probes the system for FPGA devices through XRT: {"fpga": [...]} or, if
    probing fails, {"fpga": "why"}."""
    from . import _C

    result = {"version": __version__, "build": dict(_C.build_info()), "backends": backend_status()}
    if devices:  # fpga is the one backend with devices to probe
        fpga = result["backends"]["fpga"]
        try:
            found = list(_C.devices("fpga")) if fpga["available"] else fpga["reason"]
        except RuntimeError as exc:
            found = str(exc)
        result["devices"] = {"fpga": found}
    if print_it:
        print(format_info(result))
    return result


def format_info(result: dict) -> str:
    lines = [f"edgemoe {result['version']}", "build:"]
    lines += [f"  {k}: {v}" for k, v in result["build"].items()]
    lines.append("backends:")
    for name, b in result["backends"].items():
        if b["available"]:
            lines.append(f"  {name}: available" + (f" ({b['reason']})" if b["reason"] else ""))
        else:
            lines.append(f"  {name}: unavailable - {b['reason']}")
    if "devices" in result:
        lines.append("devices:")
        for name, found in result["devices"].items():
            if isinstance(found, str):
                lines.append(f"  {name}: cannot probe - {found}")
            elif not found:
                noop = os.environ.get("XCL_EMULATION_MODE") == "noop"
                lines.append(f"  {name}: none found" + (" (XCL_EMULATION_MODE=noop: XRT lists no device, yet device 0 "
                                                         "opens for a dry run)" if noop else ""))
            else:
                lines += [f"  {name} {d}" for d in found]
    return "\n".join(lines)
