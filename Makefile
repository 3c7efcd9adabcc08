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
        python3-numpy python3-yaml python3-pil python3-matplotlib python3-skimage python3-pytest \
        libxrt-dev uuid-dev

SOURCES := $(shell find csrc python kernels tests/cpp cmake -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.py' -o -name 'CMakeLists.txt' -o -name '*.cmake' -o -name '*.cfg' \) -not -path '*/vitis/build/*' 2>/dev/null) \
           CMakeLists.txt setup.py pyproject.toml

.PHONY: all deps install test test-cpp test-python test-asan demo bench info clean

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

test-cpp: install
	cd $(BUILD_DIR) && ctest --output-on-failure

test-python: install
	$(PY) -m pytest -q tests

test: test-cpp test-python

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

demo: install
	$(PY) -m edgemoe demo --out demo_out --cache $(CACHE)

bench: install
	$(PY) -m edgemoe bench --cache $(CACHE)

info: install
	$(PY) -m edgemoe info

clean:
	rm -rf build $(VENV) $(CACHE)/install.stamp demo_out python/edgemoe/_C*.so
