# The two commands: `make demo` and `make test`. Both install what is missing (Debian packages,
# the venv, the build) first. Run as root on Debian 12, or with the packages already present.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE ?= .cache
BUILD_DIR := build/py
JOBS ?= 2

DEBS := cmake ninja-build g++ python3-venv python3-pip python3-setuptools python3-wheel \
        libtorch-dev python3-torch pybind11-dev python3-pybind11 libdnnl-dev libopenblas0-pthread \
        python3-numpy python3-yaml python3-pil python3-matplotlib python3-skimage python3-scipy python3-pytest \
        python3-nbclient python3-ipykernel python3-nbformat jupyter-notebook python3-distributed libxrt-dev uuid-dev libexpat1-dev \
        qemu-user-static

SOURCES := $(shell find csrc python kernels tests/cpp cmake -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.py' -o -name 'CMakeLists.txt' -o -name '*.cmake' -o -name '*.cfg' \) -not -path '*/vitis/build/*' 2>/dev/null) \
           CMakeLists.txt setup.py pyproject.toml

.PHONY: all deps install kernelspec test test-cpp test-python test-wheel bench-native test-asan test-aarch64 demo bench \
        notebook notebooks info clean

all: install

$(CACHE)/deps.stamp: Makefile
	@mkdir -p $(CACHE)
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install: $$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

deps: $(CACHE)/deps.stamp

$(PY): $(CACHE)/deps.stamp
	/usr/bin/python3 -m venv --system-site-packages $(VENV)

$(CACHE)/install.stamp: $(PY) $(SOURCES)
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) EDGEMOE_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) \
	  $(PY) -m pip install --no-build-isolation --no-deps -q .
	@touch $@

install: $(CACHE)/install.stamp

# The Jupyter kernel "edgemoe": the venv's python (system site-packages: torch, notebook), so a
# server started from the venv lists it and the notebooks (their metadata name it) open ready to run.
KERNELSPEC := $(VENV)/share/jupyter/kernels/edgemoe/kernel.json
$(KERNELSPEC): $(CACHE)/install.stamp
	$(PY) -Xfrozen_modules=off -m ipykernel install --prefix $(VENV) --name edgemoe --display-name "edgemoe (.venv)" >/dev/null
	@# -Xfrozen_modules=off: Python 3.11's frozen modules make the kernel's debugger warn at every start
	$(PY) -c "import json, sys; p = '$(KERNELSPEC)'; spec = json.load(open(p)); argv = spec['argv']; \
	  argv[1:1] = [] if '-Xfrozen_modules=off' in argv else ['-Xfrozen_modules=off']; json.dump(spec, open(p, 'w'), indent=1)"
	@echo "registered the Jupyter kernel 'edgemoe' ($(KERNELSPEC))"
kernelspec: $(KERNELSPEC)

test-cpp: install
	cd $(BUILD_DIR) && ctest --output-on-failure

test-python: install kernelspec
	$(PY) -m pytest -q tests

test: test-cpp test-python test-wheel

# A wheel built here (portable: every x86-64 CPU, csrc/core/isa.h) installs into a clean venv and
# runs a forward on each kernel path, and on an AVX2-only CPU as qemu models one (Haswell).
WHEEL_DIR := build/wheel
test-wheel: install
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) EDGEMOE_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) \
	  $(PY) -m pip wheel --no-build-isolation --no-deps -q -w $(WHEEL_DIR) .
	$(PY) -c "import glob, zipfile; names = zipfile.ZipFile(glob.glob('$(WHEEL_DIR)/edgemoe-*.whl')[0]).namelist(); \
	  assert any(n.endswith('.dist-info/LICENSE') for n in names), 'the wheel carries no LICENSE'"
	/usr/bin/python3 -m venv --system-site-packages $(WHEEL_DIR)/venv
	$(WHEEL_DIR)/venv/bin/python -m pip install --no-deps -q $(WHEEL_DIR)/edgemoe-*.whl
	cd $(WHEEL_DIR) && for isa in $$(venv/bin/python -c "import edgemoe; print(' '.join(edgemoe.info()['build']['isa_supported']))"); do \
	  EDGEMOE_FORCE_ISA=$$isa venv/bin/python -W ignore -c "import edgemoe, torch; m = edgemoe.Model.pretrained(); \
	    y = m(torch.zeros(1, 3, *m.config.image_size), task='sal'); assert bool(torch.isfinite(y).all()), 'not finite'; \
	    print('wheel $(WHEEL_DIR): path', edgemoe.info()['build']['isa'], 'ok')" || exit 1; \
	done
	@if [ "$$(uname -m)" = x86_64 ]; then cd $(WHEEL_DIR) && out=$$(qemu-x86_64-static -cpu Haswell venv/bin/python -W ignore -c \
	  "import edgemoe, torch; m = edgemoe.Model.pretrained(); m(torch.zeros(1, 3, *m.config.image_size), task='sal'); \
	   print('wheel under qemu -cpu Haswell: path', edgemoe.info()['build']['isa'])" 2>&1) || { echo "$$out"; exit 1; }; \
	  echo "$$out" | grep -v "TCG doesn't support"; echo "$$out" | grep -q "path avx2"; fi

# ASan + UBSan: the C++ tests, the kernel testbenches and the extension, built apart in build/asan;
# the extension runs the Python smoke set (tests/test_safety.py: tiny models on cpu and emu, NaN,
# overflow and odd-shape cases, hostile files) under an uninstrumented python with the runtime
# preloaded (python is C, so libstdc++ is preloaded too, or ASan cannot intercept C++ throws). Any
# report fails the target (UBSan aborts; ASan aborts on its first error); --capture=sys leaves the
# reports on the terminal.
ASAN_DIR := build/asan
ASAN_ENV := ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
test-asan: install
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGEMOE_SANITIZE=ON \
	  -DPython3_EXECUTABLE=$(CURDIR)/$(PY) -DEDGEMOE_PYTHON_OUTPUT_DIR=$(CURDIR)/$(ASAN_DIR)/pkg/edgemoe >/dev/null
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && $(ASAN_ENV) ctest --output-on-failure
	cp python/edgemoe/*.py $(ASAN_DIR)/pkg/edgemoe/
	EDGEMOE_EXPECT_SANITIZED=1 $(ASAN_ENV) PYTHONPATH=$(CURDIR)/$(ASAN_DIR)/pkg \
	  LD_PRELOAD="$$(g++ -print-file-name=libasan.so) $$(g++ -print-file-name=libstdc++.so)" \
	  $(PY) -m pytest -q -p no:cacheprovider --capture=sys tests/test_safety.py tests/test_asan_smoke.py

# The ZCU102's host is a Cortex-A53: the C++ core, the cpu/emu/fpga backends, the C++ tests and the
# kernel testbenches cross-built with Debian's aarch64 toolchain against multiarch :arm64 libraries,
# run under qemu-user. libdnnl-dev:arm64 cannot be installed next to libdnnl-dev (their
# dnnl_config.h differ), so it is unpacked into a private prefix. No Python here: Debian's arm64
# torch cannot run under this machine's python.
AARCH64_DIR := build/aarch64
ARM64_PREFIX := $(CURDIR)/$(CACHE)/arm64/prefix
ARM64_DEBS := crossbuild-essential-arm64 qemu-user-static file libxrt-dev:arm64 uuid-dev:arm64 libexpat1-dev:arm64 libdnnl2:arm64
$(CACHE)/arm64.stamp: Makefile
	@mkdir -p $(CACHE)/arm64/debs
	@if ! dpkg --print-foreign-architectures | grep -qx arm64; then \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to add the arm64 architecture (dpkg --add-architecture arm64)" >&2; exit 1; fi; \
	  dpkg --add-architecture arm64 && apt-get update -qq; \
	fi
	@missing=$$(for p in $(ARM64_DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install: $$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	rm -rf $(ARM64_PREFIX) $(CACHE)/arm64/debs/*.deb
	cd $(CACHE)/arm64/debs && apt-get download -qq libdnnl-dev:arm64 libdnnl2:arm64 2>/dev/null
	for d in $(CACHE)/arm64/debs/*.deb; do dpkg-deb -x $$d $(ARM64_PREFIX); done
	@touch $@

test-aarch64: $(CACHE)/arm64.stamp
	cmake -S . -B $(AARCH64_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/aarch64-linux-gnu.cmake -DEDGEMOE_ARM64_PREFIX=$(ARM64_PREFIX) \
	  -Ddnnl_DIR=$(ARM64_PREFIX)/usr/lib/aarch64-linux-gnu/cmake/dnnl \
	  -DEDGEMOE_PYTHON=OFF -DEDGEMOE_NATIVE=OFF -DEDGEMOE_WITH_XRT=ON >/dev/null
	cmake --build $(AARCH64_DIR) -j $(JOBS)
	cd $(AARCH64_DIR) && ctest --output-on-failure
	@file $(AARCH64_DIR)/tests/cpp/test_fpga_noop | grep -q 'ARM aarch64' || { echo "test-aarch64: not an aarch64 build" >&2; exit 1; }
	@test -e /usr/lib/aarch64-linux-gnu/libxrt_noop.so.2 || \
	  echo "test-aarch64: xclbin_noop and fpga_noop not run: Debian's libxrt1:arm64 ships no noop shim (they run in make test)"

demo: install
	$(PY) -m edgemoe demo --out demo_out --cache $(CACHE)

bench: install
	$(PY) -m edgemoe bench --cache $(CACHE)

# The portable build against a -march=native build of the same source (issue 19: no speed loss).
NATIVE_DIR := build/native
bench-native: install
	cmake -S . -B $(NATIVE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DEDGEMOE_NATIVE=ON -DEDGEMOE_TESTS=OFF \
	  -DPython3_EXECUTABLE=$(CURDIR)/$(PY) -DEDGEMOE_PYTHON_OUTPUT_DIR=$(CURDIR)/$(NATIVE_DIR)/pkg/edgemoe >/dev/null
	cmake --build $(NATIVE_DIR) -j $(JOBS)
	cp -r python/edgemoe/*.py python/edgemoe/checkpoints $(NATIVE_DIR)/pkg/edgemoe/
	$(PY) -c "from pathlib import Path; from edgemoe.bench import bench_native; \
	  raise SystemExit(bench_native(Path('$(NATIVE_DIR)/pkg'), Path('$(CACHE)')))"

# A notebook server on the notebooks, from the venv, with the edgemoe kernel: token-protected, on
# localhost unless NOTEBOOK_IP says otherwise; it prints its URL. As root Jupyter needs --allow-root.
NOTEBOOK_IP ?= 127.0.0.1
NOTEBOOK_PORT ?= 8888
notebook: install kernelspec
	@echo "starting Jupyter on http://$(NOTEBOOK_IP):$(NOTEBOOK_PORT)/ (open the URL with the token printed below;"
	@echo "the notebooks run on the kernel 'edgemoe (.venv)'; Ctrl-C twice stops the server)"
	cd notebooks && exec ../$(PY) -m notebook --no-browser --ip=$(NOTEBOOK_IP) --port=$(NOTEBOOK_PORT) \
	  $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

# Re-run both notebooks headless and write them back with their outputs (what is committed).
notebooks: install kernelspec
	$(PY) notebooks/execute.py notebooks/fpga_vs_pytorch.ipynb
	$(PY) notebooks/execute.py notebooks/expert_routing.ipynb

info: install
	$(PY) -m edgemoe info

clean:
	rm -rf build $(VENV) $(CACHE)/install.stamp demo_out python/edgemoe/_C*.so
