#!/usr/bin/env bash
# The README's two commands, for a fresh Debian/Ubuntu machine with the Rust toolchain:
#   bash scripts/run.sh demo   installs what is missing, then runs the demo on embedded hosters
#   bash scripts/run.sh test   installs what is missing (packages and the real clients), then runs
#                              every test and prints a "N passed, N failed" line
#   bash scripts/run.sh setup  only installs
# Debian packages are installed with apt-get (as root, or through sudo when not root).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/poa-archiver/target}"

# RocksDB itself (linked, see .cargo/config.toml), clang + libclang for its bindgen, fuse3 for the
# read-only mount.
BUILD_PACKAGES=(librocksdb-dev clang libclang-dev fuse3)

# For the real-client tests only: Node.js + npm and Python's venv, unless the machine has them.
test_packages() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || echo nodejs npm
  python3 -m venv -h >/dev/null 2>&1 || echo python3-venv
}

install_packages() {
  local missing=()
  for pkg in "$@"; do
    # Not `dpkg -s`: it also succeeds for a removed package whose config files remain.
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  echo "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi

case "${1:-}" in
  setup)
    # g++ for libFuzzer's C++ (fuzz/, whose smoke run .ci/run adds).
    install_packages "${BUILD_PACKAGES[@]}" g++ $(test_packages)
    bash tests/clients/install.sh
    ;;
  demo)
    shift
    install_packages "${BUILD_PACKAGES[@]}"
    exec cargo run -- demo "$@"
    ;;
  test)
    install_packages "${BUILD_PACKAGES[@]}" $(test_packages)
    bash tests/clients/install.sh
    log=$(mktemp)
    set +e
    cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    # One totals line over every test binary's "test result:" line.
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
         END { printf "%d passed, %d failed\n", p, f }' "$log"
    rm -f "$log"
    exit "$status"
    ;;
  *)
    echo "usage: bash scripts/run.sh demo [DEMO ARGS] | test | setup" >&2
    exit 2
    ;;
esac
