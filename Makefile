# grpcguard — one Makefile, no autotools.
#
#   make            build every program into build/
#   make deps       install the Debian packages the build, tests, demo and benchmarks need,
#                   and fetch helm, kubectl, kubernetes-models into build/tools (scripts/tools.sh)
#   make test       deps + build + unit tests (check) + integration tests + fuzz corpus replay
#   make sanitize   the same tests, built with -fsanitize=address,undefined (build/sanitize)
#   make valgrind   the integration tests with every program under valgrind
#   make demo       the whole story on one machine (see demo/)
#   make bench      benchmarks against nghttpx and haproxy (see bench/)
#   make fuzz       libFuzzer targets (clang), FUZZ_SECONDS each
#   make format / make lint
#
# Sources are discovered by directory: policy/*.c and common/*.c become static libraries;
# webhook/*.c, sidecar/*.c and certs/*.c become one program each (the sidecar's OpenSSL
# code, CRYPTO_SRC, becomes grpcguard-sidecar-crypto.so beside it); tests/unit/<dir>/test_*.c
# become one check binary each, linked with <dir>'s objects (minus main.c) built with
# -DGG_TESTING so TESTABLE functions are visible; fuzz/*.c become fuzz targets.

BUILD    ?= build
ifeq ($(origin CC),default)
CC       = gcc
endif
SAN      ?=
PKGS      = libmicrohttpd jansson yaml-0.1 openssl libnghttp2 libuv
PYTHON   ?= /usr/bin/python3

WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wvla -Wnull-dereference
HARDEN   = -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
ifeq ($(SAN),1)
OPT      = -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
HARDEN   = -fstack-protector-strong -fPIE
else
OPT      = -O2
endif
CFLAGS  ?= $(OPT) -g
ALL_CFLAGS = -std=c17 $(CFLAGS) $(WARN) $(HARDEN) -D_GNU_SOURCE -I. -MMD -MP \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ifeq ($(SAN),1)
LDFLAGS_SAN = -fsanitize=address,undefined
endif
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(LDFLAGS_SAN) $(LDFLAGS)
LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(HTTP_PARSER_LIBS) $(WEBHOOK_CURL) -lpthread -lm
# Per program: only the webhook links libmicrohttpd (and so GnuTLS); the sidecar's admin
# port parses HTTP/1.1 with Debian's http-parser (no .pc file; static, ~30 KiB of code, so
# the runtime image needs no extra package). Unit tests and fuzz targets link LIBS.
HTTP_PARSER_LIBS = -l:libhttp_parser.a
BASE_LIBS    = $(shell pkg-config --libs $(filter-out libmicrohttpd,$(PKGS)) 2>/dev/null) -lpthread -lm
# The webhook links libcurl for TokenReview (POST /v1/certify, issue 16).
WEBHOOK_CURL = $(shell pkg-config --libs libcurl 2>/dev/null)
WEBHOOK_LIBS = $(shell pkg-config --libs libmicrohttpd 2>/dev/null) $(WEBHOOK_CURL) $(BASE_LIBS)
# The sidecar binary does not link OpenSSL: tls.c, identity.c and jwt.c are built into
# grpcguard-sidecar-crypto.so, loaded beside it when identity or JWT is configured
# (sidecar/crypto.h, issue 17). The binary exports the symbols the module calls back
# (log, metrics, http-parser...): every symbol the module's objects leave undefined is
# listed in a generated --dynamic-list; those the binary does not define are ignored.
SIDECAR_LIBS = $(HTTP_PARSER_LIBS) \
               $(shell pkg-config --libs jansson yaml-0.1 libnghttp2 libuv 2>/dev/null) -lpthread -lm
CRYPTO_LIBS  = $(shell pkg-config --libs openssl jansson 2>/dev/null) -lpthread
CERTGEN_LIBS = $(BASE_LIBS)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)
# grpcguard-graph alone links libcurl and Graphviz (the sidecar and webhook must not).
GRAPH_PKGS = libcurl libgvc libcgraph
GRAPH_CFLAGS = $(shell pkg-config --cflags $(GRAPH_PKGS) 2>/dev/null)
GRAPH_LIBS = $(shell pkg-config --libs $(GRAPH_PKGS) 2>/dev/null)

POLICY_SRC  = $(sort $(wildcard policy/*.c))
COMMON_SRC  = $(sort $(wildcard common/*.c))
WEBHOOK_SRC = $(sort $(wildcard webhook/*.c))
SIDECAR_SRC = $(sort $(wildcard sidecar/*.c))
CRYPTO_SRC  = sidecar/tls.c sidecar/identity.c sidecar/jwt.c sidecar/cryptomod.c
SIDECAR_BIN_SRC = $(filter-out $(CRYPTO_SRC),$(SIDECAR_SRC))
CERTS_SRC   = $(sort $(wildcard certs/*.c))
GRAPH_SRC   = $(sort $(wildcard graph/*.c))

obj  = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
tobj = $(patsubst %.c,$(BUILD)/tobj/%.o,$(1))
mobj = $(patsubst %.c,$(BUILD)/mobj/%.o,$(1))
nomain = $(filter-out %/main.c,$(1))

LIBPOLICY  = $(BUILD)/libgrpcguard-policy.a
LIBCOMMON  = $(BUILD)/libgrpcguard-common.a
TLIBPOLICY = $(BUILD)/tobj/libgrpcguard-policy.a
TLIBCOMMON = $(BUILD)/tobj/libgrpcguard-common.a

PROGRAMS = $(BUILD)/grpcguard-webhook $(BUILD)/grpcguard-sidecar $(BUILD)/grpcguard-certgen \
           $(BUILD)/grpcguard-graph $(BUILD)/grpcguard-sidecar-crypto.so

UNIT_SRC  = $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BINS = $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))

FUZZ_SRC     = $(filter-out fuzz/replay_main.c,$(sort $(wildcard fuzz/*.c)))
FUZZ_REPLAY  = $(patsubst fuzz/%.c,$(BUILD)/fuzz-replay/%,$(FUZZ_SRC))
FUZZ_BUILD   = build/fuzz
FUZZ_SECONDS ?= 60

PHONY_PY = py
.PHONY: py all deps test unit integration fuzz-replay sanitize valgrind demo bench fuzz \
        format lint clean manifests images check-deps
all: $(PROGRAMS) $(BUILD)/sidecar-crypto.dynlist

# Keep intermediate objects (unit-test objects would otherwise be deleted and rebuilt).
.SECONDARY:

# ---- libraries and programs -------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@
$(BUILD)/tobj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DGG_TESTING -c $< -o $@
# The crypto module's objects: position-independent, every symbol hidden but its table.
$(BUILD)/mobj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

$(LIBPOLICY): $(call obj,$(POLICY_SRC))
	@rm -f $@; ar rcs $@ $^
$(LIBCOMMON): $(call obj,$(COMMON_SRC))
	@rm -f $@; ar rcs $@ $^
$(TLIBPOLICY): $(call tobj,$(POLICY_SRC))
	@rm -f $@; ar rcs $@ $^
$(TLIBCOMMON): $(call tobj,$(COMMON_SRC))
	@rm -f $@; ar rcs $@ $^

$(BUILD)/grpcguard-webhook: $(call obj,$(WEBHOOK_SRC)) $(LIBPOLICY) $(LIBCOMMON)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(WEBHOOK_LIBS)
$(BUILD)/grpcguard-sidecar: $(call obj,$(SIDECAR_BIN_SRC)) $(LIBPOLICY) $(LIBCOMMON) \
                           $(BUILD)/sidecar-crypto.dynlist
	$(CC) $(ALL_LDFLAGS) -Wl,--dynamic-list=$(BUILD)/sidecar-crypto.dynlist -o $@ \
	  $(filter %.o %.a,$^) $(SIDECAR_LIBS)
$(BUILD)/sidecar-crypto.dynlist: $(call mobj,$(CRYPTO_SRC))
	@nm -u $^ | awk '$$1 == "U" { print $$2 }' | sort -u >$@.u
	@nm --defined-only $^ | awk 'NF == 3 { print $$3 }' | sort -u >$@.d
	@{ echo '{'; comm -23 $@.u $@.d | sed 's/.*/  &;/'; echo '};'; } >$@; rm -f $@.u $@.d
$(BUILD)/grpcguard-sidecar-crypto.so: $(call mobj,$(CRYPTO_SRC))
	$(CC) -shared $(filter-out -pie,$(ALL_LDFLAGS)) -o $@ $^ $(CRYPTO_LIBS)
$(BUILD)/grpcguard-certgen: $(call obj,$(CERTS_SRC)) $(LIBCOMMON)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CERTGEN_LIBS)
$(BUILD)/obj/graph/%.o $(BUILD)/tobj/graph/%.o: ALL_CFLAGS += $(GRAPH_CFLAGS)
$(BUILD)/grpcguard-graph: $(call obj,$(GRAPH_SRC)) $(LIBCOMMON)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(GRAPH_LIBS) $(BASE_LIBS)

# ---- unit tests (check) -----------------------------------------------------
# tests/unit/<dir>/test_x.c links <dir>'s test objects (minus main.c) and both libraries.
.SECONDEXPANSION:
$(BUILD)/unit/%: tests/unit/%.c $$(call tobj,$$(call nomain,$$(filter-out policy/% common/%,$$(wildcard $$(firstword $$(subst /, ,$$*))/*.c)))) $(TLIBPOLICY) $(TLIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DGG_TESTING $(shell pkg-config --cflags check) $(ALL_LDFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(CHECK_LIBS) $(LIBS)

$(BUILD)/unit/graph/%: LIBS += $(GRAPH_LIBS)
# test_h2conn makes the per-worker JWT set-up fail (out of memory) through this wrapper.
$(BUILD)/unit/sidecar/test_h2conn: LIBS += -Wl,--wrap=sc_authn_new

unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do \
	  echo "== unit $${t#$(BUILD)/unit/}"; s=$$(date +%s); \
	  CK_FORK=yes CK_DEFAULT_TIMEOUT=30 ./$$t || fail=1; \
	  echo "== unit $${t#$(BUILD)/unit/}: $$(( $$(date +%s) - s ))s"; \
	done; exit $$fail

# ---- fuzz targets: corpus replay with gcc, libFuzzer with clang ---------------
FUZZ_LINK = $(call nomain,$(WEBHOOK_SRC) $(SIDECAR_SRC)) graph/model.c
$(BUILD)/fuzz-replay/%: fuzz/%.c fuzz/replay_main.c $(call tobj,$(FUZZ_LINK)) $(TLIBPOLICY) $(TLIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DGG_TESTING $(ALL_LDFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(LIBS)

fuzz-replay: $(FUZZ_REPLAY)
	@fail=0; for t in $(FUZZ_REPLAY); do n=$${t##*/}; \
	  if [ -d fuzz/corpus/$$n ]; then s=$$(date +%s); ./$$t fuzz/corpus/$$n || fail=1; \
	    echo "== fuzz-replay $$n: $$(( $$(date +%s) - s ))s"; fi; \
	done; exit $$fail

fuzz:
	@bash fuzz/run.sh $(FUZZ_SECONDS)

# ---- test entry points --------------------------------------------------------
# Python stubs for the greeter (tests, demo, benchmarks), generated with grpc_tools.
PY_STUBS = $(patsubst tests/greeter/%.proto,build/py/%_pb2.py,$(wildcard tests/greeter/*.proto))
build/py/%_pb2.py: tests/greeter/%.proto
	@mkdir -p build/py
	$(PYTHON) -m grpc_tools.protoc -Itests/greeter --python_out=build/py \
	  --grpc_python_out=build/py $<
py: $(PY_STUBS)

integration: all $(PY_STUBS)
	@GG_BIN=$(abspath $(BUILD)) PYTHON=$(PYTHON) bash tests/integration/run.sh

test: deps
	@$(MAKE) --no-print-directory all unit-and-more

.PHONY: unit-and-more
unit-and-more: unit fuzz-replay integration

sanitize: deps
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  GG_SANITIZE=1 $(MAKE) --no-print-directory BUILD=build/sanitize SAN=1 all unit-and-more

valgrind: deps all $(PY_STUBS)
	@GG_BIN=$(abspath $(BUILD)) GG_VALGRIND=1 PYTHON=$(PYTHON) bash tests/integration/run.sh

deps:
	@bash scripts/deps.sh

demo: deps all $(PY_STUBS)
	@GG_BIN=$(abspath $(BUILD)) PYTHON=$(PYTHON) bash demo/demo.sh

# bench/run.sh builds what it measures into build/bench itself (each piece optional).
bench: deps $(PY_STUBS)
	@bash bench/run.sh

manifests:
	@bash scripts/manifests.sh

images:
	@bash scripts/images.sh

format:
	clang-format -i $(wildcard */*.c */*.h tests/unit/*/*.c fuzz/*.c)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --std=c11 -D_GNU_SOURCE --inline-suppr -I. --suppress=missingIncludeSystem \
	  policy common webhook sidecar certs graph

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
