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
#   make install  install under $(DESTDIR)$(PREFIX) (default /usr/local; see the end)
#   make deb      build the Debian package into build/deb/ (scripts/build-deb.sh)
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
           $(PKG_CFLAGS) -MMD -MP
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

.PHONY: all test check lint demo asan tsan deps clean bench install deb man
# Keep the unit tests' objects: they are intermediate files to make, which
# would otherwise delete and rebuild them on every run.
.SECONDARY:
all: $(ESPLINE) $(SIM) $(UNITS)
ifeq ($(BUILD),build)
	@ln -sf $(ESPLINE) espline && ln -sf $(SIM) espline-sim
endif

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Only tests may know where the source tree is (their data files); the
# programs find everything at run time (no build path in an installed binary).
$(BUILD)/obj/tests/%.o: CFLAGS += -DESPLINE_SOURCE_DIR='"$(CURDIR)"'

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

# make test and make demo build on every core.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# A clean clone has no flasher stub and no esptool-js yet: install them
# first, as make demo does.
# Seconds one test program may run (tests/run.sh cuts it there); the
# sanitizer builds run 2 to 5 times slower, so they get more.
TEST_TIMEOUT ?= 300

test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@BUILD=$(BUILD) TEST_TIMEOUT=$(TEST_TIMEOUT) tests/run.sh

# The unit tests also run the espline and espline-sim binaries (test_report's
# CLI checks, test_sim_server): build them too, or a stale one fails them.
check: $(UNITS) $(ESPLINE) $(SIM)
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
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@bench/run.sh

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=address,undefined OPT=-O1 TEST_TIMEOUT=600 test

tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan SAN=thread OPT=-O1 CC=clang TEST_TIMEOUT=600 test

clean:
	rm -rf build espline espline-sim

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- installing: make install, make deb ----------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=] installs the programs (espline,
# and espline-sim for dry runs), the man pages, bash and zsh completion, the
# sample recipes with their demo images and a sample station file under
# share/espline/, the systemd unit, the sysusers.d user and the udev rules.
# The flasher stub is not installed: `espline setup` copies one at run time.
VERSION        := $(shell cat VERSION)
ESPLINE_GIT_REV ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell \
                   git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
PREFIX         ?= /usr/local
BINDIR         ?= $(PREFIX)/bin
DATADIR        ?= $(PREFIX)/share
MANDIR         ?= $(DATADIR)/man
SYSCONFDIR     ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR    ?= $(PREFIX)/lib/sysusers.d
UDEVRULESDIR   ?= $(PREFIX)/lib/udev/rules.d
BASHCOMPDIR    ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR     ?= $(DATADIR)/zsh/vendor-completions
INSTALL        ?= install

# The version and the git revision reach one object file; a stamp that
# changes only with them rebuilds it after a commit.
VERSION_STAMP := $(BUILD)/version.stamp
$(VERSION_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(VERSION) $(ESPLINE_GIT_REV)' | cmp -s - $@ || echo '$(VERSION) $(ESPLINE_GIT_REV)' >$@
$(BUILD)/obj/src/cli/version.o: $(VERSION_STAMP)
$(BUILD)/obj/src/cli/version.o: CFLAGS += -DESPLINE_VERSION='"$(VERSION)"' -DESPLINE_GIT_REV='"$(ESPLINE_GIT_REV)"'
.PHONY: FORCE
FORCE:

MAN_PAGES := $(BUILD)/man/espline.1 $(BUILD)/man/espline-sim.1 $(BUILD)/man/espline-recipe.5 \
             $(BUILD)/man/espline-station.5
man: $(MAN_PAGES)
$(BUILD)/man/espline.1: $(ESPLINE) docs/man/espline.1.head docs/man/espline.1.tail scripts/gen-man.sh
	@mkdir -p $(dir $@)
	scripts/gen-man.sh espline $(ESPLINE) docs/man/espline.1.head docs/man/espline.1.tail $(VERSION) >$@.tmp && mv $@.tmp $@
$(BUILD)/man/espline-sim.1: $(SIM) docs/man/espline-sim.1.head docs/man/espline-sim.1.tail scripts/gen-man.sh
	@mkdir -p $(dir $@)
	scripts/gen-man.sh plain $(SIM) docs/man/espline-sim.1.head docs/man/espline-sim.1.tail $(VERSION) >$@.tmp && mv $@.tmp $@
$(BUILD)/man/%.5: docs/man/%.5 scripts/gen-man.sh
	@mkdir -p $(dir $@)
	scripts/gen-man.sh page $< $(VERSION) >$@.tmp && mv $@.tmp $@

DEMO_IMAGES := $(BUILD)/demo-images
$(DEMO_IMAGES)/.done: tests/tools/mkdemo_images.c scripts/make-demo-images.sh
	BUILD=$(BUILD) scripts/make-demo-images.sh $(DEMO_IMAGES) && touch $@

subst = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DATADIR@|$(DATADIR)|g'

install: $(ESPLINE) $(SIM) $(MAN_PAGES) $(DEMO_IMAGES)/.done
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(DATADIR)/espline/recipes/images $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(UDEVRULESDIR) $(DESTDIR)$(SYSCONFDIR)/espline
	$(INSTALL) -m 0755 $(ESPLINE) $(SIM) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 0644 $(BUILD)/man/espline.1 $(BUILD)/man/espline-sim.1 $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 0644 $(BUILD)/man/espline-recipe.5 $(BUILD)/man/espline-station.5 $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 0644 recipes/*.yaml recipes/*.csv recipes/*.tmpl $(DESTDIR)$(DATADIR)/espline/recipes/
	$(INSTALL) -m 0644 $(DEMO_IMAGES)/*.bin $(DESTDIR)$(DATADIR)/espline/recipes/images/
	$(subst) dist/station.yaml.in >$(DESTDIR)$(DATADIR)/espline/station.yaml
	test -e $(DESTDIR)$(SYSCONFDIR)/espline/station.yaml || \
		$(INSTALL) -m 0644 $(DESTDIR)$(DATADIR)/espline/station.yaml $(DESTDIR)$(SYSCONFDIR)/espline/station.yaml
	$(INSTALL) -m 0644 dist/completion/espline.bash $(DESTDIR)$(BASHCOMPDIR)/espline
	ln -sf espline $(DESTDIR)$(BASHCOMPDIR)/espline-sim
	$(INSTALL) -m 0644 dist/completion/_espline $(DESTDIR)$(ZSHCOMPDIR)/_espline
	$(subst) dist/systemd/espline.service.in >$(DESTDIR)$(SYSTEMDUNITDIR)/espline.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/espline.service
	$(INSTALL) -m 0644 dist/udev/70-espline.rules $(DESTDIR)$(UDEVRULESDIR)/
	if [ -n "$(SYSUSERSDIR)" ]; then $(INSTALL) -d $(DESTDIR)$(SYSUSERSDIR) && \
		$(INSTALL) -m 0644 dist/sysusers/espline.conf $(DESTDIR)$(SYSUSERSDIR)/; fi

# The .deb: dpkg-buildpackage on a copy of the tree in build/deb/ (so the
# tree stays clean and the next build is incremental), then lintian.
deb:
	@ESPLINE_GIT_REV=$(ESPLINE_GIT_REV) scripts/build-deb.sh
