"""One fuzz case in a forked child: an address-space cap (the parent's virtual size + cap), a timeout
after which the child is killed, and one JSON line back through a pipe. A signal, a hang, a child
that dies without reporting or an exception the case does not expect is the finding.

The parent must fork from a clean state: torch and edgemoe imported, every thread pool pinned to one
thread, no parallel region run (OpenMP does not survive fork in a child that then uses it)."""
from __future__ import annotations

import json
import os
import resource
import select
import signal
import time
from pathlib import Path
from typing import Callable


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def vm_bytes() -> int:
    return _status_bytes("VmSize")


def flip_bytes(data: bytes, rng, most: int) -> bytes:
    """`data` with 1 .. `most` bytes XORed with a random non-zero value."""
    b = bytearray(data)
    for _ in range(rng.randint(1, most)):
        b[rng.randrange(len(b))] ^= rng.randint(1, 255)
    return bytes(b)


def run_fuzz_script(script: Path, workdir: Path, seed: int, cases: int) -> dict:
    """Runs a fuzz script (``python SCRIPT WORKDIR SEED CASES``) in its own process, next to this module, and
    returns the JSON summary it prints last; raises with its stderr if it fails."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, str(script), str(workdir), str(seed), str(cases)], capture_output=True,
                         text=True, timeout=600, cwd=Path(__file__).parent)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    summary["stderr"] = run.stderr
    return summary


def run_in_child(case: Callable[[], dict], timeout_s: float, cap_bytes: int) -> dict:
    """Runs case() in a forked child; returns its dict, or {"outcome": "hang" | "signal" | "crash" | "foreign"}."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            soft = vm_bytes() + cap_bytes
            resource.setrlimit(resource.RLIMIT_AS, (soft, soft))
            result = case()
        except BaseException as exc:  # noqa: BLE001 - anything the case did not expect is the finding
            result = {"outcome": "foreign", "error": type(exc).__name__, "message": str(exc)[:300]}
        os.write(write_fd, (json.dumps(result) + "\n").encode())
        os._exit(0)
    os.close(write_fd)
    deadline = time.monotonic() + timeout_s
    chunks = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    done, status = os.waitpid(pid, os.WNOHANG)
    if not done:
        if chunks:  # reported, still exiting
            _, status = os.waitpid(pid, 0)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"outcome": "hang"}
    if os.WIFSIGNALED(status):
        return {"outcome": "signal", "signal": os.WTERMSIG(status)}
    text = b"".join(chunks).decode(errors="replace").strip()
    return json.loads(text) if text else {"outcome": "crash", "status": status}
