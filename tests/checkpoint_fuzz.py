"""Seeded mutations of a small M3ViT checkpoint, each loaded and run once in a forked child.

Run by tests/test_checkpoint_fuzz.py as its own process (``python checkpoint_fuzz.py WORKDIR SEED CASES``):
that process imports torch and edgemoe, pins every thread pool to one thread and runs no parallel
region before forking, so the children start from a clean OpenMP state. Each child caps its address
space (the parent's virtual size + CAP_BYTES), loads one mutated checkpoint, runs one task and
reports one JSON line; the parent kills it after TIMEOUT_S. Prints a JSON summary as its last line.
"""
from __future__ import annotations

import collections
import dataclasses
import io
import json
import os
import pickletools
import random
import shutil
import struct
import sys
import time
import zipfile
from pathlib import Path

from fuzz_harness import run_in_child

CAP_BYTES = 1 << 30
TIMEOUT_S = 20.0
LOAD_ARGS = dict(num_heads=2, top_k=2, image_size=(32, 32), num_threads=1)


def fuzz_config():
    from edgemoe import synthetic

    return dataclasses.replace(synthetic.preset("tiny"), depth=2, moe_blocks=(1,), image_size=(32, 32),
                               mlp_hidden=64, expert_hidden=32, head_channels=16,
                               tasks=(("semseg", 3), ("sal", 1)), gate_num_tasks=2)


# --- mutations ------------------------------------------------------------------------------------------

def _flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def _zero(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data))
    length = rng.randint(1, 4096)
    return data[:start] + bytes(min(length, len(data) - start)) + data[start + length:]


def _opcodes(pkl: bytes):
    """(opcode, arg, start, end) of each opcode of one pickle."""
    ops = list(pickletools.genops(pkl))
    return [(op, arg, pos, ops[i + 1][2] if i + 1 < len(ops) else len(pkl)) for i, (op, arg, pos) in enumerate(ops)]


def _huge_int_opcode(rng: random.Random) -> bytes:
    value = rng.choice([2 ** 31 - 1, 2 ** 40, 2 ** 62, 2 ** 64 + 5, -1, -(2 ** 40)])
    raw = value.to_bytes((value.bit_length() + 8) // 8 + 1, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _mutate_pickle(pkl: bytes, rng: random.Random) -> bytes:
    ops = _opcodes(pkl)
    body = [o for o in ops if o[0].name not in ("PROTO", "STOP")]
    kind = rng.choice(["int", "memo", "delete", "duplicate", "swap", "opcode", "numel", "string"])
    op, arg, start, end = rng.choice(body)
    if kind == "int":
        ints = [o for o in body if o[0].name in ("BININT", "BININT1", "BININT2", "LONG1")]
        if ints:
            op, arg, start, end = rng.choice(ints)
            if rng.random() < 0.5:
                return pkl[:start] + _huge_int_opcode(rng) + pkl[end:]
            return pkl[:start + 1] + bytes(rng.randrange(256) for _ in range(end - start - 1)) + pkl[end:]
    if kind == "memo":
        memo = [o for o in body if o[0].name in ("BINGET", "BINPUT", "LONG_BINGET", "LONG_BINPUT")]
        if memo:
            op, arg, start, end = rng.choice(memo)
            return pkl[:start + 1] + bytes(rng.randrange(256) for _ in range(end - start - 1)) + pkl[end:]
    if kind == "numel":  # the storage size of a persistent id: the int after the location string 'cpu'
        for i, (o, a, s, e) in enumerate(body[:-1]):
            if a == "cpu" and body[i + 1][0].name in ("BININT", "BININT1", "BININT2", "LONG1") and rng.random() < 0.3:
                nxt = body[i + 1]
                return pkl[:nxt[2]] + _huge_int_opcode(rng) + pkl[nxt[3]:]
    if kind == "string":
        strings = [o for o in body if o[0].name in ("BINUNICODE", "SHORT_BINUNICODE") and o[3] - o[2] > 3]
        if strings:
            op, arg, start, end = rng.choice(strings)
            pos = rng.randrange(end - 1, end)
            return pkl[:pos] + bytes([rng.randrange(32, 127)]) + pkl[pos + 1:]
    if kind == "delete":
        return pkl[:start] + pkl[end:]
    if kind == "duplicate":
        return pkl[:end] + pkl[start:end] + pkl[end:]
    if kind == "swap":
        op2, _, s2, e2 = rng.choice(body)
        if s2 > end:
            return pkl[:start] + pkl[s2:e2] + pkl[end:s2] + pkl[start:end] + pkl[e2:]
    return pkl[:start] + bytes([rng.choice(b"().0N}]sebRQqhgtu")]) + pkl[start + 1:]


def _rewrite_zip(data: bytes, edit) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            for name, content in edit(info.filename, zin.read(info)):
                zout.writestr(name, content)
    return out.getvalue()


def _legacy_main_span(data: bytes):
    """Start and end of the main pickle of a legacy file (after magic, protocol and sys_info)."""
    f = io.BytesIO(data)
    for _ in range(3):
        for _op in pickletools.genops(f):
            pass
    start = f.tell()
    for _op in pickletools.genops(f):
        pass
    return start, f.tell()


class Mutator:
    def __init__(self, state, workdir: Path):
        import torch

        self.torch = torch
        self.state = state
        self.workdir = workdir
        self.zip_bytes = self._save(state, zip_format=True)
        self.legacy_bytes = self._save(state, zip_format=False)

    def _save(self, state, zip_format=True, extras=True) -> bytes:
        import numpy as np

        torch = self.torch
        sd = collections.OrderedDict(("module." + k, v) for k, v in state.items())
        sd._metadata = collections.OrderedDict()
        obj = {"state_dict": sd}
        if extras:
            obj.update(epoch=3, best_result={"semseg": {"mIoU": np.float64(0.25)}},
                       optimizer={"state": {0: {"momentum_buffer": torch.zeros(8)}}, "param_groups": []})
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=zip_format)
        return buf.getvalue()

    def byte_level(self, rng):
        data = self.zip_bytes if rng.random() < 0.5 else self.legacy_bytes
        return rng.choice([_flip, _truncate, _zero])(data, rng)

    def zip_records(self, rng):
        with zipfile.ZipFile(io.BytesIO(self.zip_bytes)) as z:
            names = z.namelist()
            contents = {n: z.read(n) for n in names}
        victim, other = rng.choice(names), rng.choice(names)
        kind = rng.choice(["shorten", "extend", "replace", "empty", "remove", "rename", "flip"])

        def edit(name, content):
            if name != victim:
                return [(name, content)]
            if kind == "shorten":
                return [(name, content[: rng.randrange(max(1, len(content)))])]
            if kind == "extend":
                return [(name, content + bytes(rng.randint(1, 64)))]
            if kind == "replace":
                return [(name, contents[other])]
            if kind == "empty":
                return [(name, b"")]
            if kind == "remove":
                return []
            if kind == "rename":
                return [(name + "x", content)]
            return [(name, _flip(content, rng))] if content else [(name, content)]

        return _rewrite_zip(self.zip_bytes, edit)

    def pickle_ops(self, rng):
        if rng.random() < 0.6:
            def edit(name, content):
                return [(name, _mutate_pickle(content, rng) if name.endswith("data.pkl") else content)]
            return _rewrite_zip(self.zip_bytes, edit)
        start, end = _legacy_main_span(self.legacy_bytes)
        data = self.legacy_bytes
        return data[:start] + _mutate_pickle(data[start:end], rng) + data[end:]

    def tensors(self, rng):
        torch = self.torch
        state = dict(self.state)
        key = rng.choice(sorted(state))
        t = state[key]
        kind = rng.choice(["shape", "dtype", "rank", "nan", "inf", "missing", "extra", "non_tensor", "stride0",
                           "empty", "big_value", "rename"])
        if kind == "shape":
            state[key] = torch.zeros([max(0, d + rng.choice([-1, 1, 7])) for d in t.shape] or [2])
        elif kind == "dtype":
            state[key] = t.to(rng.choice([torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.bool,
                                           torch.uint8, torch.complex64]))
        elif kind == "rank":
            state[key] = t.reshape(-1) if t.dim() > 1 else t.reshape(1, -1, 1)
        elif kind in ("nan", "inf", "big_value"):
            key = rng.choice(sorted(k for k, v in state.items() if v.is_floating_point()))
            t = state[key].clone()
            t.view(-1)[rng.randrange(max(1, t.numel()))] = {"nan": float("nan"), "inf": float("inf"),
                                                             "big_value": 3e38}[kind]
            state[key] = t
        elif kind == "missing":
            del state[key]
        elif kind == "extra":
            name = rng.choice(["backbone.blocks.9.norm1.weight", "backbone.blocks.2.mlp.experts.htoh4.weight",
                               "decoders.depth.conv_4.weight", "decoders.bogus.conv_4.weight", "x" * 300,
                               "backbone.blocks.1.mlp.gate.7.w_gate"])
            state[name] = torch.zeros(rng.choice([(1,), (4, 4), (2, 3, 4, 5)]))
        elif kind == "non_tensor":
            state[key] = rng.choice([1.5, "text", [1, 2], None, {"a": 1}])
        elif kind == "stride0":
            state[key if rng.random() < 0.5 else "unused.big"] = torch.zeros(1).expand(rng.choice([2 ** 20, 2 ** 28, 2 ** 40]))
        elif kind == "empty":
            state[key] = torch.zeros(0)
        elif kind == "rename":
            state[key.replace(".", "_", 1)] = state.pop(key)
        return self._save(state, zip_format=rng.random() < 0.7, extras=rng.random() < 0.5)

    def rank_dir(self, rng, path: Path):
        """A rank-shard directory with one thing wrong: writes it at path."""
        path.mkdir()
        torch = self.torch
        experts = {k: v for k, v in self.state.items() if ".mlp.experts." in k}
        rank0 = {k: (v[:2] if k in experts else v) for k, v in self.state.items()}
        rank1 = {k: v[2:] for k, v in experts.items()}
        files = {"0.pth": self._save(rank0), "1.pth": self._save(rank1, extras=False)}
        kind = rng.choice(["zero_padded", "missing", "extra", "copy", "flip", "gap", "shape", "ok"])
        if kind == "zero_padded":
            files = {"00.pth": files["0.pth"], "01.pth": files["1.pth"]}
        elif kind == "missing":
            del files["1.pth"]
        elif kind == "extra":
            files["2.pth"] = files["1.pth"]
        elif kind == "copy":
            files["1.pth"] = files["0.pth"]
        elif kind == "flip":
            files["1.pth"] = _flip(files["1.pth"], rng)
        elif kind == "gap":
            files["3.pth"] = files.pop("1.pth")
        elif kind == "shape":
            key = rng.choice(sorted(rank1))
            rank1[key] = torch.zeros(2, *[d + 1 for d in rank1[key].shape[1:]])
            files["1.pth"] = self._save(rank1, extras=False)
        for name, data in files.items():
            (path / name).write_bytes(data)
        return kind

    def case(self, index: int, seed: int) -> Path:
        rng = random.Random(f"{seed}:{index}")
        family = ["byte_level", "zip_records", "pickle_ops", "tensors", "rank_dir"][index % 5]
        path = self.workdir / f"case{index}"
        if family == "rank_dir":
            self.rank_dir(rng, path)
        else:
            path.write_bytes(getattr(self, family)(rng))
        return family, path


# --- running cases in forked children ------------------------------------------------------------------------

def _load_and_run(path: Path, images) -> dict:
    import edgemoe

    try:
        model = edgemoe.Model.from_checkpoint(path, **LOAD_ARGS)
    except edgemoe.CheckpointError as exc:  # includes UnsafeCheckpointError
        return {"outcome": "refused", "error": type(exc).__name__, "message": str(exc)[:200]}
    try:
        out = model(images, task=model.tasks[0])
        ok = bool(out.isfinite().all()) and tuple(out.shape[2:]) == (32, 32)
        return {"outcome": "loaded" if ok else "bad_output"}
    except ValueError as exc:  # weights that overflow float32 are refused at the first forward
        return {"outcome": "loaded_forward_refused", "message": str(exc)[:200]}


def run_case(path: Path, images) -> dict:
    return run_in_child(lambda: _load_and_run(path, images), TIMEOUT_S, CAP_BYTES)


def main(workdir: str, seed: int, cases: int) -> dict:
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    from edgemoe import synthetic

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = fuzz_config()
    state = dict(synthetic.seeded_model(cfg, seed=seed).state_dict())
    mutator = Mutator(state, workdir)
    images = synthetic.pixel_images(cfg, 1, seed)
    outcomes = collections.Counter()
    families = collections.Counter()
    failures = []
    start = time.monotonic()
    for index in range(cases):
        family, path = mutator.case(index, seed)
        result = run_case(path, images)
        outcomes[result["outcome"]] += 1
        families[(family, result["outcome"])] += 1
        if result["outcome"] not in ("refused", "loaded", "loaded_forward_refused"):
            failures.append({"case": index, "family": family, **result})
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return {"cases": cases, "seconds": round(time.monotonic() - start, 1), "outcomes": dict(outcomes),
            "families": {f"{f}:{o}": n for (f, o), n in sorted(families.items())}, "failures": failures}


if __name__ == "__main__":
    summary = main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    print(json.dumps(summary))
