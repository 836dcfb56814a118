# unixipc -- build, test, demo, bench.  See README.md.
LUA        ?= lua5.4
PKG_CONFIG ?= pkg-config
LUA_INCDIR ?= $(shell $(PKG_CONFIG) --cflags-only-I lua5.4 2>/dev/null | sed -e "s/^ *-I//" -e "s/ .*//")
ifeq ($(strip $(LUA_INCDIR)),)
LUA_INCDIR = /usr/include/lua5.4
endif
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Werror
BUILD    ?= build
ifeq ($(SELFPIPE),1)
BUILD     = build/selfpipe
CPPFLAGS += -DUNIXIPC_SELFPIPE
endif
ALL_CFLAGS = $(WARN) $(CFLAGS) -std=gnu11 -fPIC -fvisibility=hidden -I$(LUA_INCDIR) $(CPPFLAGS)

SRCS := $(wildcard csrc/*.c)
OBJS := $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(SRCS))
SO    = $(BUILD)/unixipc/core.so

export LUA_PATH  := lua/?.lua;lua/?/init.lua;;
export LUA_CPATH := $(BUILD)/?.so;;
export UNIXIPC_BUILD := $(BUILD)

.PHONY: all deps test demo bench clean
all: $(SO)

$(SO): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $(OBJS) $(LDFLAGS)

$(BUILD)/obj/%.o: csrc/%.c csrc/private.h $(wildcard csrc/*.inc)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# installs lua5.4, its headers and busted (and the peers the specs use)
deps:
	@sh .ci/deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	@bash spec/run.sh $(SPECS)

demo: deps
	@$(MAKE) --no-print-directory all
	$(LUA) examples/demo.lua

bench: deps
	@$(MAKE) --no-print-directory all
	@bash bench/run.sh

clean:
	rm -rf build

# ---- hardening (issue 13): make check runs every part; README, Reliability
.PHONY: check asan valgrind clang fuzz fuzz-merge luafuzz faults soak
check: deps
	@sh .ci/deps.sh check
	@$(MAKE) --no-print-directory all
	@bash check/check.sh

asan:
	@bash check/asan.sh

valgrind:
	@bash check/valgrind.sh

clang:
	@bash check/clang.sh

fuzz:
	@bash check/fuzz.sh

# fold the inputs a longer fuzz run found into the committed seed corpus
fuzz-merge:
	@bash check/fuzz.sh merge

luafuzz:
	@$(MAKE) --no-print-directory all
	@$(LUA) check/luafuzz.lua

faults:
	@$(MAKE) --no-print-directory all
	@bash check/faults.sh

# (not in make check or CI; the keep-alive phase needs ~2,100 descriptors a worker)
soak: deps
	@$(MAKE) --no-print-directory all
	@ulimit -n 8192 2>/dev/null || ulimit -n "$$(ulimit -Hn)" 2>/dev/null; $(LUA) check/soak.lua
