"""setuptools drives the one CMake build; the extension lands in edgemoe/_C*.so."""
import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(os.environ.get("EDGEMOE_BUILD_DIR", ROOT / "build" / "py"))
        build_dir.mkdir(parents=True, exist_ok=True)
        args = [
            f"-DEDGEMOE_PYTHON_OUTPUT_DIR={out_dir}",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DCMAKE_BUILD_TYPE=Release",
            # Portable unless asked: one wheel for every CPU of the architecture (csrc/core/isa.h);
            # EDGEMOE_NATIVE=1 tunes the whole build for this machine's CPU instead.
            f"-DEDGEMOE_NATIVE={'ON' if os.environ.get('EDGEMOE_NATIVE', '0') not in ('', '0', 'OFF', 'off') else 'OFF'}",
        ] + os.environ.get("EDGEMOE_CMAKE_ARGS", "").split()
        if subprocess.call(["ninja", "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0 \
                and not (build_dir / "Makefile").exists():
            args.append("-GNinja")
        subprocess.check_call(["cmake", "-S", str(ROOT), "-B", str(build_dir)] + args)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.check_call(["cmake", "--build", str(build_dir), "-j", jobs])


setup(ext_modules=[CMakeExtension("edgemoe._C")], cmdclass={"build_ext": CMakeBuild})
