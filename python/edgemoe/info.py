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
    from . import _C

    isa_error = _C.build_info().get("isa_request_error")
    if isa_error:  # the environment asked for a kernel path this build or CPU lacks: no silent fallback
        raise ValueError(isa_error)


def default_threads() -> dict:
    """{"threads": n, "reason": why}: the OpenMP threads a Model uses when ``num_threads`` is not given
    (edgemoe.model._default_threads), and where that number comes from."""
    from .model import _default_threads

    n = _default_threads()
    total = os.cpu_count() or 1
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    if n == allowed:
        why = f"one per CPU this process may run on ({allowed}" + (f" of the machine's {total}, " if allowed != total
                                                                     else ", ") + "its CPU affinity)"
    else:
        why = f"edgemoe's default policy (edgemoe.model._default_threads) for {allowed} usable CPUs"
    omp = os.environ.get("OMP_NUM_THREADS")
    if omp:  # a model sets its own count, so a user who set this should know it is not what applies
        why += f"; OMP_NUM_THREADS={omp} does not change it"
    return {"threads": n, "reason": why + "; set it with num_threads= or model.num_threads (Python), --threads (CLI)"}


def info(print_it: bool = False, devices: bool = False) -> dict:
    """Version, build options and backends. For an available backend, "reason" notes what it needs at
    run time (fpga: the XRT runtime the environment provides), found without touching a device.
    "threads" is what a model uses by default and why; "boards" the limits of each accelerator kernel
    build (emu and each FPGA board: edgemoe.boards), the "which board do I need" table.
    ``devices=True`` also probes the system for FPGA devices through XRT: {"fpga": [...]} or, if
    probing fails, {"fpga": "why"}."""
    from . import _C
    from .boards import kernel_builds

    result = {"version": __version__, "build": dict(_C.build_info()), "backends": backend_status(),
              "threads": default_threads(), "bf16": dict(_C.bf16_support()), "boards": kernel_builds()}
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
    from .boards import format_boards

    lines = [f"edgemoe {result['version']}", "build:"]
    lines += [f"  {k}: {v}" for k, v in result["build"].items()]
    lines.append("backends:")
    for name, b in result["backends"].items():
        if b["available"]:
            lines.append(f"  {name}: available" + (f" ({b['reason']})" if b["reason"] else ""))
        else:
            lines.append(f"  {name}: unavailable - {b['reason']}")
    lines.append(f"threads: {result['threads']['threads']} per model by default: {result['threads']['reason']}")
    bf16 = result["bf16"]
    lines.append(f"bf16 (cpu, precision='bf16'): available through {bf16['isa']}" if bf16["available"]
                 else f"bf16 (cpu, precision='bf16'): unavailable - {bf16['reason']}")

    lines.append("accelerator kernel builds (a model must fit a build's limits to run on it):")
    lines.append(format_boards(result["boards"]))
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
