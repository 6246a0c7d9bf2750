# jack: `make run` starts a node on ./jack.toml, `make test` runs every test.
CARGO ?= cargo
BIN   := target/release/jack

.PHONY: all build run demo sample tools test test-32 test-arm test-arm-full cross-arm64 cross-armv7 dist image check-image lint ci check-deploy bench bench-serve bench-download bench-crash bench-handoff bench-torznab bench-qbit bench-status bench-pickup bench-perip bench-ui bench-flaky bench-knock bench-arm bench-limits bench-sources bench-hash sim clean

all: build

build:
	$(CARGO) build --release --locked

# Build, make the sample library, and run the node on the shipped jack.toml,
# with the demo friend alice (contrib/demo/alice.toml) beside it.
run: build
	./scripts/run.sh

# The same, then search alice through Torznab and grab a release as Radarr
# would, and show the download until it is complete (scripts/run.sh).
demo: build
	./scripts/run.sh --demo

sample:
	@./scripts/sample-library.sh media

# Outside programs the tests drive (installed when missing, where possible;
# the openssl CLI only makes test certificates: jack links no OpenSSL).
tools:
	@./scripts/ensure-tools.sh curl wget aria2c python3 openssl
	@./scripts/ensure-qbittorrent-api.sh
	@./scripts/ensure-browser.sh

# The whole test suite (unit, integration, end to end with the real binary).
# --no-fail-fast: every test binary runs and every failure is reported (by
# default cargo skips the binaries after the first one that fails).
test: tools
	$(CARGO) test --locked --no-fail-fast

# The download plane's deterministic simulation, long: SEEDS sequences
# (or as many as SIM_SECONDS allow, when set) without the 60 s cap of
# `make test` (debug build: the fault knobs exist only there). A failing
# seed replays alone with `JACK_SIM_SEED=<n> cargo test --test sim -- --nocapture`.
SEEDS ?= 200
SIM_SECONDS ?= 0
sim:
	JACK_SIM_SEQUENCES=$(SEEDS) JACK_SIM_SECONDS=$(SIM_SECONDS) $(CARGO) test --locked --test sim -- --nocapture

# The same suite built as a 32-bit program (i686: 32-bit usize, as on
# armv7), proving the u64 byte math (a 5 GiB file, offsets past 4 GiB).
test-32: tools
	@./scripts/ensure-32bit.sh
	$(CARGO) test --locked --no-fail-fast --target i686-unknown-linux-gnu

# ARM binary sizes and idle memory under qemu-user (BENCHMARKS.md, ARM).
bench-arm: cross-arm64 cross-armv7
	./scripts/bench-arm.sh

# ARM builds for NAS boxes, made with cargo-zigbuild (zig compiles the
# bundled SQLite and ring for the target and links): a static aarch64 musl
# binary, and an armv7 hard-float one linked against glibc 2.17 so it runs
# on old NAS firmware. scripts/ensure-cross.sh installs what is missing.
# The results: target/<triple>/release/jack, started once under qemu-user.
ARM64  := aarch64-unknown-linux-musl
ARMV7  := armv7-unknown-linux-gnueabihf
QEMU64 := qemu-aarch64
QEMU32 := qemu-arm -L /usr/arm-linux-gnueabihf
ZIG    := PYTHONPATH=$(CURDIR)/target/zig $(CURDIR)/target/zig/bin/cargo-zigbuild

cross-arm64:
	@./scripts/ensure-cross.sh
	$(ZIG) zigbuild --release --locked --target $(ARM64)
	$(QEMU64) target/$(ARM64)/release/jack --version

cross-armv7:
	@./scripts/ensure-cross.sh
	$(ZIG) zigbuild --release --locked --target $(ARMV7).2.17
	$(QEMU32) target/$(ARMV7)/release/jack --version

# Release archives: dist/jack-<version>-<target>.tar.gz for x86_64 and
# aarch64 (static musl) and armv7 (glibc 2.17), each with the binary,
# README.md, jack.toml and contrib/jack.service, and dist/SHA256SUMS;
# reproducible (the commit's time everywhere). See scripts/dist.sh.
dist:
	./scripts/dist.sh

# The container image for linux/amd64, linux/arm64 and linux/arm/v7 in one
# OCI archive, dist/jack-<version>-image.oci.tar (`podman load -i` it), and
# one archive per architecture for `docker load -i`,
# dist/jack-<version>-image-<arch>.docker.tar; tagged jack:latest (from the
# Containerfile).
image:
	./scripts/image.sh

# The image run as a runtime would, without one (root: namespaces, chroot):
# metadata, then each architecture's entrypoint as a non-root uid:gid
# against temporary /config and /data (arm64 and armv7 under qemu-user).
check-image: image
	./scripts/check-image.sh

# The suite built for aarch64 and for armv7 and run under qemu-user: the
# test programs through the runners in .cargo/config.toml, the jack binary
# they start through JACK_TEST_RUNNER (binfmt_misc is not assumed).
# aarch64 runs every suite; armv7 the ones where a 32-bit ARM build can
# differ (the byte math past 4 GiB: serving a sparse 5 GiB file and a
# download resumed past 4 GiB with a 32-bit usize; the registry, crash
# recovery, digests, several sources, TLS and keys through ring's ARM
# code), since make test-32 runs the whole suite with a 32-bit usize and
# the HTTP surfaces do not depend on the target. CI runs this;
# `make test-arm-full` runs every suite on both.
ARMV7_SUITES := --lib --test client --test serve --test download --test crash \
	--test verify --test digests --test sources --test e2e --test disk_full \
	--test upgrade --test tls --test keys --test stub_vectors
test-arm: tools
	@./scripts/ensure-cross.sh
	JACK_TEST_RUNNER="$(QEMU64)" $(ZIG) test --locked --no-fail-fast --target $(ARM64)
	JACK_TEST_RUNNER="$(QEMU32)" $(ZIG) test --locked --no-fail-fast --target $(ARMV7).2.17 $(ARMV7_SUITES)

test-arm-full: tools
	@./scripts/ensure-cross.sh
	JACK_TEST_RUNNER="$(QEMU64)" $(ZIG) test --locked --no-fail-fast --target $(ARM64)
	JACK_TEST_RUNNER="$(QEMU32)" $(ZIG) test --locked --no-fail-fast --target $(ARMV7).2.17

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

ci: lint test

# The deployment files run for real (docs/INSTALL-NAS.md, REVERSE-PROXY.md):
# systemd-analyze verify on the unit, contrib/nginx/jack.conf in front of a
# node over TLS, the unit's SystemCallFilter against a traced download.
# Needs systemd-analyze, strace, nginx and openssl (nginx is installed).
check-deploy: build
	@./scripts/ensure-tools.sh curl nginx openssl python3 strace
	sed 's#/usr/local/bin/jack#$(CURDIR)/$(BIN)#' contrib/jack.service > target/jack.service
	systemd-analyze verify target/jack.service
	./scripts/check-proxy.sh
	./scripts/check-syscalls.sh

# Measurements for BENCHMARKS.md (not tests).
bench: build
	./scripts/bench-foundation.sh
	./scripts/bench-catalogue.sh

# jack against nginx serving the same 1 GiB file (BENCHMARKS.md, serving).
# Speed limits (BENCHMARKS.md, "Speed limits"): 1 and 4 MiB/s caps held
# over 30 s, upload and download, median of 3; BEFORE=<jack> times a 1 GiB
# body without a limit against it.
bench-sources: build
	./scripts/bench-sources.sh

bench-limits: build
	./scripts/bench-limits.sh

# The background hasher: 100 GiB of sparse files hashed (time, CPU, peak
# RSS), a 1 GiB download while it works and after, and the hashing loop's
# MB/s per target (the ARM builds under qemu-user).
bench-hash: build cross-arm64 cross-armv7
	@./scripts/ensure-tools.sh curl python3
	ARM=1 ./scripts/bench-hash.sh

bench-serve: build
	@./scripts/ensure-tools.sh curl nginx python3
	./scripts/bench-serve.sh

# jack -> jack against curl and aria2c from nginx (BENCHMARKS.md, downloads).
bench-download: build
	@./scripts/ensure-tools.sh curl nginx aria2c python3
	./scripts/bench-download.sh

# The kill -9 loop: bytes re-fetched per crash, time to resume, with the
# link and the copy hand-off (the copy run needs root for its bind mounts).
bench-crash: build
	./scripts/bench-crash.sh

# The copy hand-off of a 1 GiB file against cp + sync (BENCHMARKS.md).
bench-handoff: build
	./scripts/bench-handoff.sh

# A Torznab search across a healthy, a slow and a dead peer against the
# configured peer timeout (BENCHMARKS.md, Torznab).
bench-torznab: build
	@./scripts/ensure-tools.sh python3
	./scripts/bench-torznab.sh

# The qBittorrent-compatible API: torrents/info on 10,000 rows, and memory
# during three transfers with the API polled every second (BENCHMARKS.md).
bench-qbit: build
	@./scripts/ensure-tools.sh python3
	./scripts/bench-qbit.sh

# Status and metrics: /metrics, /api/v1/downloads and `jack status` on a
# registry of 10,000 rows (BENCHMARKS.md, "Status and metrics").
bench-status: build
	@./scripts/ensure-tools.sh python3
	./scripts/bench-status.sh

# Stubs start at once: a stub's rename into the watch folder to the first
# file request at the peer, 20 stubs (BENCHMARKS.md, "Stubs start at once").
bench-pickup: build
	@./scripts/ensure-tools.sh python3
	./scripts/bench-pickup.sh

# 600 slow connections from 127.0.0.2 while 127.0.0.1 asks /ping 50 times
# (BENCHMARKS.md, "One address cannot take every connection"); BEFORE=<a
# jack built from main> measures that binary first.
bench-perip: build
	@./scripts/ensure-tools.sh python3
	./scripts/bench-perip.sh

# The status page: its size, the node's memory with five pages open during
# three transfers, and the node's CPU per open page (BENCHMARKS.md).
bench-ui: build
	@./scripts/ensure-tools.sh python3
	./scripts/bench-ui.sh

# A 1 GiB download through a proxy that cuts every connection after 32 MiB,
# against the same download uncut (BENCHMARKS.md, "A flaky uplink").
bench-flaky: build
	@./scripts/ensure-tools.sh python3
	./scripts/bench-flaky.sh

# A node no one can knock over (BENCHMARKS.md, issue 19): slow readers,
# idle and slowloris connections, guessing, 8 streams; BEFORE=<jack binary>
# runs the same against another build side by side.
bench-knock: build
	@./scripts/ensure-tools.sh curl python3
	./scripts/bench-knock.sh

clean:
	$(CARGO) clean
