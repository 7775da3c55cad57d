# espline - production-line programmer for ESP8266 modules.
#
#   make          build espline and the simulator espline-sim
#   make test     install what is missing, build, run every test (unit,
#                 integration, interop, the layering check)
#   make check    build and run the unit tests and the layering check (< 1 min)
#   make lint     cppcheck on src/ (scripts/cppcheck.supp) and the layering check
#   make demo     install what is missing, build, run a batch on simulated devices
#   make asan     the test suite under AddressSanitizer + UBSan (build/asan)
#   make tsan     the test suite under ThreadSanitizer (build/tsan)
#   make deps     install missing Debian/npm dependencies (scripts/install-deps.sh)
#
# Binaries go to $(BUILD)/; the default build also links ./espline and
# ./espline-sim at the top for convenience.

CC      ?= cc
BUILD   ?= build
SAN     ?=
PKGS    := libserialport sqlite3 yaml-0.1 zlib libcrypto jansson libpq libmicrohttpd
OPT     ?= -O2

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror -Iinclude -Isrc \
           -DESPLINE_SOURCE_DIR='"$(CURDIR)"' $(PKG_CFLAGS) -MMD -MP
LDLIBS  += $(PKG_LIBS) -lutil -lpthread -lm
ifneq ($(SAN),)
CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SAN)
endif

# One folder per layer, lowest first (see docs/ARCHITECTURE.md); the CLI is
# the program, everything else is the library.  Private headers sit beside
# their module and are included as "layer/name.h" through -Isrc.
LAYERS   := util port link device recipe job record central station
LIB_SRC  := $(foreach layer,$(LAYERS),$(wildcard src/$(layer)/*.c))
# The web page's files (web/), built into the binary (src/station/web.c).
WEB_FILES  := web/index.html web/app.js web/app.css
WEB_ASSETS := $(BUILD)/gen/web_assets.c
LIB_SRC  += $(WEB_ASSETS)
CLI_SRC  := $(wildcard src/cli/*.c)
SIM_SRC  := $(filter-out tests/sim/main.c,$(wildcard tests/sim/*.c))
UNIT_SRC := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB      := $(BUILD)/libespline.a
SIMLIB   := $(BUILD)/libespline-sim.a
ESPLINE  := $(BUILD)/espline
SIM      := $(BUILD)/espline-sim
UNITS    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all test check lint demo asan tsan deps clean bench
# Keep the unit tests' objects: they are intermediate files to make, which
# would otherwise delete and rebuild them on every run.
.SECONDARY:
all: $(ESPLINE) $(SIM) $(UNITS)
ifeq ($(BUILD),build)
	@ln -sf $(ESPLINE) espline && ln -sf $(SIM) espline-sim
endif

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(WEB_ASSETS): $(WEB_FILES) scripts/embed-web.sh
	@mkdir -p $(dir $@)
	scripts/embed-web.sh $@ $(WEB_FILES)

# The archive is made afresh: ar r keeps members whose source was renamed or
# deleted, and the linker could pick such a stale object.
$(LIB): $(call obj,$(LIB_SRC))
	@mkdir -p $(dir $@)
	@rm -f $@
	$(AR) rcs $@ $^

$(SIMLIB): $(call obj,$(SIM_SRC))
	@mkdir -p $(dir $@)
	@rm -f $@
	$(AR) rcs $@ $^

$(ESPLINE): $(call obj,$(CLI_SRC)) $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(SIM): $(call obj,tests/sim/main.c) $(SIMLIB) $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(SIMLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

# A clean clone has no flasher stub and no esptool-js yet: install them
# first, as make demo does.
test: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/run.sh

check: $(UNITS)
	@BUILD=$(BUILD) TEST_KINDS="unit tools" tests/run.sh

LINT_FLAGS := --quiet --enable=warning,style,performance,portability --std=c11 \
              --error-exitcode=1 --inline-suppr --suppressions-list=scripts/cppcheck.supp \
              -Iinclude -Isrc -D_GNU_SOURCE
lint:
	@command -v cppcheck >/dev/null || { echo "make lint: cppcheck missing (make deps)"; exit 1; }
	cppcheck $(LINT_FLAGS) -j2 src
	@tests/tools/check_layers.sh >/dev/null || tests/tools/check_layers.sh

deps:
	@scripts/install-deps.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

bench: all
	@bench/run.sh

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=address,undefined OPT=-O1 test

tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan SAN=thread OPT=-O1 CC=clang test

clean:
	rm -rf build espline espline-sim

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
