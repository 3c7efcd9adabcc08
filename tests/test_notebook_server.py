"""What a user does with `make notebook`, headless: start the notebook server from the project's venv,
list notebooks/ through its REST API, start a session with the `edgemoe` kernel through the API, run the
first code cells of each notebook on that kernel's channels, and stop the server. A broken kernel
registration, a server that cannot start or a kernel without edgemoe fails here."""
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import requests
from jupyter_client import BlockingKernelClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["fpga_vs_pytorch.ipynb", "expert_routing.ipynb"]
FIRST_CELLS = 2  # imports and the models: where a kernel without edgemoe, or without its data, fails
START_TIMEOUT = 60.0
CELL_TIMEOUT = 300.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The server as `make notebook` starts it (the venv's python -m notebook, in notebooks/), on a free
    port with a fresh token, its runtime and config directories private to the test."""
    home = tmp_path_factory.mktemp("jupyter")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTER_CONFIG_DIR=str(home / "config"))
    argv = [sys.executable, "-m", "notebook", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            "--port-retries=0", f"--NotebookApp.token={token}"]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(argv, cwd=NOTEBOOKS, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    session = requests.Session()
    session.headers["Authorization"] = f"token {token}"
    deadline = time.time() + START_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the notebook server exited with {proc.returncode}:\n{(home / 'server.log').read_text()}")
            try:
                if session.get(f"{base}/api/status", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                pytest.fail(f"the notebook server did not answer in {START_TIMEOUT} s:\n{(home / 'server.log').read_text()}")
            time.sleep(0.3)
        yield {"base": base, "session": session, "runtime": home / "runtime", "token": token}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_the_server_refuses_requests_without_its_token(server):
    assert requests.get(f"{server['base']}/api/contents/", timeout=5).status_code == 403


def test_the_server_lists_the_notebooks_and_the_edgemoe_kernel(server):
    api = server["session"]
    listed = {item["name"] for item in api.get(f"{server['base']}/api/contents/", timeout=10).json()["content"]}
    assert set(NAMES) <= listed
    specs = api.get(f"{server['base']}/api/kernelspecs", timeout=10).json()["kernelspecs"]
    assert "edgemoe" in specs, f"the edgemoe kernel is not registered (make kernelspec): {sorted(specs)}"
    argv = specs["edgemoe"]["spec"]["argv"]
    assert Path(argv[0]).parent == Path(sys.executable).parent, "the kernel runs the project's venv python"


@pytest.mark.parametrize("name", NAMES)
def test_a_session_runs_the_first_cells_on_the_edgemoe_kernel(server, name):
    api, base = server["session"], server["base"]
    created = api.post(f"{base}/api/sessions", timeout=30,
                       data=json.dumps({"path": name, "type": "notebook", "name": name, "kernel": {"name": "edgemoe"}}))
    assert created.status_code == 201, created.text
    session = created.json()
    assert session["kernel"]["name"] == "edgemoe"
    # A client calls a kernel dead when its heartbeat goes one second without a reply, which a kernel
    # that is only slow to start on a busy machine does ("Kernel died before replying to
    # kernel_info" while it is starting): allow it START_TIMEOUT, as the kernel_info wait does.
    client = BlockingKernelClient()
    client.load_connection_file(str(server["runtime"] / f"kernel-{session['kernel']['id']}.json"))
    client.hb_channel.time_to_dead = START_TIMEOUT
    client.start_channels()
    try:
        client.wait_for_ready(timeout=START_TIMEOUT)
        cells = [c for c in nbformat.read(NOTEBOOKS / name, as_version=4).cells if c.cell_type == "code"]
        for cell in cells[:FIRST_CELLS]:
            errors = []
            reply = client.execute_interactive(
                cell.source, timeout=CELL_TIMEOUT,
                output_hook=lambda msg: errors.append(msg["content"]) if msg["msg_type"] == "error" else None)
            assert reply["content"]["status"] == "ok" and not errors, (cell.source[:200], reply["content"], errors)
        reply = client.execute_interactive("import edgemoe, sys; print(edgemoe.__file__, sys.prefix)",
                                           timeout=60, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok"
    finally:
        client.stop_channels()
        assert api.delete(f"{base}/api/sessions/{session['id']}", timeout=30).status_code == 204
