# Thin wrapper around CMake. `make run` builds and starts the server on the
# embedded defaults; `make test` builds and runs every test, plain and under
# the sanitizers. Both install missing Debian packages first.

JOBS    ?= $(shell nproc)
CMAKE   ?= cmake
ARGS    ?=

.PHONY: all deps build run test test-plain test-asan test-tsan bench fuzz clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@$(CMAKE) --build build -j $(JOBS)

run: build
	./build/bin/holdfast serve $(ARGS)

# Every test: the normal build, then ASan+UBSan, then TSan.
test: test-plain test-asan test-tsan
	@echo "make test: all suites passed (plain, asan+ubsan, tsan)"

test-plain: build
	cd build && ctest --output-on-failure -j 1

test-asan: deps
	@$(CMAKE) -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHF_SANITIZE=address >/dev/null
	@$(CMAKE) --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j 1 -E wsclient_node

test-tsan: deps
	@$(CMAKE) -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DHF_SANITIZE=thread >/dev/null
	@$(CMAKE) --build build-tsan -j $(JOBS)
	cd build-tsan && ctest --output-on-failure -j 1 -L threaded

# libFuzzer targets (tests/fuzz), built by clang with ASan+UBSan into
# build-fuzz/. Not part of `make test`, which replays their corpora.
fuzz: deps
	@command -v clang >/dev/null || { echo "fuzz: installing clang" >&2; \
	    $$( [ "$$(id -u)" -ne 0 ] && echo sudo ) apt-get install -y -qq clang >/dev/null; }
	@$(CMAKE) -S . -B build-fuzz -DCMAKE_C_COMPILER=clang \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHF_SANITIZE=address -DHF_FUZZ=ON >/dev/null
	@$(CMAKE) --build build-fuzz -j $(JOBS) --target fuzzers
	@echo "fuzz: targets in build-fuzz/bin:" $$(cd build-fuzz/bin && ls fuzz_* | grep -v _replay)
	@echo "fuzz: run one with scripts/fuzz.sh TARGET [SECONDS|-runs=N], e.g."
	@echo "      scripts/fuzz.sh wire 60    (corpus: tests/fuzz/corpus/wire)"

bench: build
	./build/bin/holdfast-bench engine $(ARGS)

clean:
	rm -rf build build-asan build-tsan build-fuzz
