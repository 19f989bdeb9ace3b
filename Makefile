# choreo: libevents, the five services, the choreo CLI, tests, demo, bench.
# Out-of-tree build in build/ (build/sanitize/ when SANITIZE is set).

.DELETE_ON_ERROR:
.SECONDARY:
.SUFFIXES:

CC       ?= cc
SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD    := build
else
BUILD    := build/sanitize
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
# FUZZ=1 (set by `make fuzz`): clang, coverage for libFuzzer, ASan + UBSan.
ifneq ($(FUZZ),)
CC       := clang
BUILD    := build/fuzz
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=all
endif

# `make demo` and `make test` work on a fresh Debian machine: missing packages are
# installed (.ci/deps) while parsing, before pkg-config is asked for flags below.
ifneq ($(filter demo test fuzz,$(MAKECMDGOALS)),)
ifneq ($(shell sh .ci/deps >&2 || echo failed),)
$(error .ci/deps failed: install the packages it lists, then retry)
endif
endif

PKGS      := rdkafka jansson uuid sqlite3 libmicrohttpd libpq
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wno-missing-field-initializers $(SANFLAGS) \
            -DEV_SCHEMA_DIR='"$(abspath schemas)"' -Ievents $(PKG_CFLAGS)
CPPFLAGS += -MMD -MP
LDFLAGS  += $(SANFLAGS)
LDLIBS   := $(PKG_LIBS) -lpthread -lm

EV_SRC   := $(wildcard events/*.c)
EV_OBJ   := $(EV_SRC:%.c=$(BUILD)/obj/%.o)
LIBEV    := $(BUILD)/lib/libevents.a

SERVICES := $(notdir $(wildcard services/*))
SVC_BINS := $(SERVICES:%=$(BUILD)/bin/%)
CLI_SRC  := $(wildcard cli/*.c)
CLI_BIN  := $(BUILD)/bin/choreo
CLI_LIB_OBJ := $(filter-out %/cli/main.o,$(CLI_SRC:%.c=$(BUILD)/obj/%.o))
LIBCLI   := $(BUILD)/lib/libcli.a
# The flow board's page (cli/board.html), embedded in choreo as a byte array.
BOARD_PAGE := $(BUILD)/obj/gen/board_page.o

HARNESS_SRC := $(wildcard tests/harness/*.c)
HARNESS_OBJ := $(HARNESS_SRC:%.c=$(BUILD)/obj/%.o)
LIBHARNESS  := $(BUILD)/lib/libharness.a

UNIT_SRC := $(wildcard tests/unit/check_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
INTEG_SRC := $(wildcard tests/integration/check_*.c)
INTEG_BIN := $(INTEG_SRC:tests/integration/%.c=$(BUILD)/tests/integration/%)
TPROG_SRC := $(wildcard tests/integration/svc_*.c)
TPROG_BIN := $(TPROG_SRC:tests/integration/%.c=$(BUILD)/tests/integration/%)
FLOW_SRC := $(wildcard tests/flow/flow_*.c)
FLOW_BIN := $(FLOW_SRC:tests/flow/%.c=$(BUILD)/tests/flow/%)
CLUSTER_SRC := $(wildcard tests/cluster/cluster_*.c)
CLUSTER_BIN := $(CLUSTER_SRC:tests/cluster/%.c=$(BUILD)/tests/cluster/%)
# Fuzz targets: tests/fuzz/fuzz_<target>.c, seeds in tests/fuzz/corpus/<target>/.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/tests/fuzz/%)
FUZZ_TOOLS := $(BUILD)/tests/fuzz/validate_tool
FUZZ_SECONDS ?= 60
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

ALL_BINS := $(SVC_BINS) $(if $(CLI_SRC),$(CLI_BIN))
TEST_BINS := $(UNIT_BIN) $(INTEG_BIN) $(TPROG_BIN) $(FLOW_BIN) $(CLUSTER_BIN) $(FUZZ_REPLAY) \
             $(FUZZ_TOOLS)

.PHONY: all deps check test test-cluster test-bins lint format demo stop bench clean broker-jars fuzz
all: $(ALL_BINS) $(LIBEV)

deps:
	@sh .ci/deps

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(if $(findstring tests/,$<),$(CHECK_CFLAGS) -Itests/harness) -c $< -o $@

$(LIBEV): $(EV_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(LIBHARNESS): $(HARNESS_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

# A service binary: every .c of services/<name>/.
.SECONDEXPANSION:
$(BUILD)/bin/%: $$(addprefix $(BUILD)/obj/,$$(subst .c,.o,$$(wildcard services/$$*/*.c))) $(LIBEV)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(CLI_BIN): $(CLI_SRC:%.c=$(BUILD)/obj/%.o) $(BOARD_PAGE) $(LIBEV)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/gen/board_page.c: cli/board.html
	@mkdir -p $(@D)
	{ echo '/* Generated from cli/board.html by the Makefile. */'; \
	  echo '#include <stddef.h>'; \
	  echo 'const unsigned char cli_board_page[] = {'; \
	  od -An -v -tx1 $< | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '};'; \
	  echo 'const size_t cli_board_page_len = sizeof(cli_board_page);'; } >$@

$(BOARD_PAGE): $(BUILD)/gen/board_page.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

# The CLI without its main(), for the NDJSON fuzz target.
$(LIBCLI): $(CLI_LIB_OBJ) $(BOARD_PAGE)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(LIBHARNESS) $(LIBEV)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

# A fuzz target with replay.c's main(): replays a corpus with any compiler.
$(BUILD)/obj/tests/fuzz/%.o: CPPFLAGS += -Icli
$(BUILD)/tests/fuzz/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(BUILD)/obj/tests/fuzz/replay.o \
                            $(LIBCLI) $(LIBEV)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/fuzz/validate_tool: $(BUILD)/obj/tests/fuzz/validate_tool.o $(LIBEV)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The same targets linked with libFuzzer (FUZZ=1 only): build/fuzz/fuzz_<target>.
ifneq ($(FUZZ),)
.PHONY: fuzz-bins
fuzz-bins: $(FUZZ_TARGETS:%=$(BUILD)/fuzz_%)
$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(LIBCLI) $(LIBEV)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)
endif

# A cluster test: every topic it creates gets the cluster's replication factor
# (the harness asks for 1; the test wraps rd_kafka_NewTopic_new).
$(BUILD)/tests/cluster/%: $(BUILD)/obj/tests/cluster/%.o $(LIBHARNESS) $(LIBEV)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -Wl,--wrap=rd_kafka_NewTopic_new -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIBEV)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests only (and the fuzz corpora replayed): no broker needed.
check: $(UNIT_BIN) $(FUZZ_REPLAY)
	@sh tests/run-unit $(BUILD)

# Everything: unit tests, then runtime, flow and CLI tests against a real broker
# (started here when CHOREO_BROKERS is unset and none answers).
test: all $(TEST_BINS)
	@$(MAKE) --no-print-directory SANITIZE=address,undefined test-bins
	@sh tests/run-all $(BUILD) build/sanitize

# The broker-fault tests: each starts a 3-node cluster of its own on free ports
# (nothing else is started; CHOREO_BROKERS is ignored). A few minutes.
test-cluster: all $(CLUSTER_BIN)
	@fail=0; for t in $(CLUSTER_BIN); do echo "== $$t"; \
	    CHOREO_BUILD=$(CURDIR)/$(BUILD) $$t || fail=1; done; exit $$fail

# Every program and test binary of this build (used for the sanitized pass).
test-bins: all $(TEST_BINS)

# The security test alone (make test runs it too): a broker of its own with
# SASL_SSL and ACLs on free ports, the saga on per-service credentials; ~1 min.
.PHONY: test-secure
test-secure: all
	@CHOREO_BUILD=$(CURDIR)/$(BUILD) sh tests/secure/saga_secure.sh

lint:
	@sh .ci/lint

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

demo: all
	@sh demo/run

stop:
	@sh demo/stop

# Each fuzz target with libFuzzer for FUZZ_SECONDS, one after the other, on a
# copy of its corpus (build/fuzz/corpus-<target>); crash files are listed.
fuzz:
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-bins
	@sh tests/fuzz/run build/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench: all $(BENCH_BIN)
	@sh bench/run $(BUILD)

# docs/asyncapi.yaml from schemas/ (tests/ops/check_asyncapi.sh checks it is current).
.PHONY: asyncapi
asyncapi:
	python3 docs/gen-asyncapi > docs/asyncapi.yaml.tmp && mv docs/asyncapi.yaml.tmp docs/asyncapi.yaml

broker-jars:
	@sh broker/choreo-broker fetch

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
