# tests/fuzz/fuzz.mk — libFuzzer targets of every parser (included from the Makefile).
#
#   make fuzz-build            build-fuzz/fuzz_<target>: ASan + UBSan + libFuzzer, clang through mpicc
#   make fuzz [FUZZ_TIME=60]   each target FUZZ_TIME seconds from a scratch copy of its seed corpus
#                              (tests/fuzz/corpus/<target>); one line per target; non-zero on a finding
# The project's objects are compiled once into an archive without OpenMP (a parser is serial;
# the archive pulls in only the modules a target reaches). tests/fuzz/README.md says more.
FUZZ_BUILD   := build-fuzz
FUZZ_TIME    ?= 60
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_common.c,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_SAN     ?= -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Wall -Wno-unused-parameter -Wno-unknown-pragmas \
                -DATTNSCOPE_FUZZ -DATTNSCOPE_GIT_COMMIT='"fuzz"' -DFUZZ_ROOT='"$(CURDIR)"' \
                $(shell pkg-config --cflags $(PCNAMES) 2>/dev/null) $(FUZZ_SAN)
FUZZ_LINK    ?= -fsanitize=fuzzer,address,undefined
FUZZ_CLANG   ?= clang
FUZZ_CC       = OMPI_CC=$(FUZZ_CLANG) $(CC)

ifneq ($(filter fuzz fuzz-build,$(MAKECMDGOALS)),)
ifeq ($(shell command -v $(FUZZ_CLANG)),)
$(error $(FUZZ_CLANG) not found: install the Debian package clang (clang-14 on Debian 12), or run 'make deps' as root)
endif
endif

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
	@echo "built $(words $(FUZZ_TARGETS)) fuzz targets in $(FUZZ_BUILD)/: $(FUZZ_TARGETS)"
$(FUZZ_BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(FUZZ_BUILD)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_BUILD)/libattnscope.a: $(filter-out $(FUZZ_BUILD)/obj/main.o,$(SRCS:src/%.c=$(FUZZ_BUILD)/obj/%.o))
	rm -f $@ && ar rcs $@ $^
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) tests/fuzz/fuzz_common.c tests/fuzz/h5build.c $(FUZZ_BUILD)/libattnscope.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Isrc -Itests/fuzz $(filter %.c %.a,$^) -o $@ $(FUZZ_LINK) $(LDLIBS:-fopenmp=)
$(FUZZ_BUILD)/obj:
	mkdir -p $@

fuzz: fuzz-build
	@tests/fuzz/run_fuzz.sh $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZ_TARGETS)
