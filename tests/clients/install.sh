#!/usr/bin/env bash
# Installs the real third-party clients used by the client checks in this folder:
#   @polkadot/api + @polkadot/rpc-provider (npm) and substrate-interface (PyPI, in a venv);
# and a real Substrate runtime as a peer: chopsticks with Parity's Asset Hub spec (npm, in peer/);
# and subxt 0.51 (crates.io) in the small checker crate tests/clients/subxt.
# Idempotent: each part is skipped when already installed at the pinned version.
#
# usage: tests/clients/install.sh
# env:   POA_CLIENTS_DIR (default ~/.cache/poa-archiver/clients)
set -euo pipefail

POLKADOT_VERSION=16.5.6
SUBSTRATE_INTERFACE_VERSION=1.8.1
DIR="${POA_CLIENTS_DIR:-$HOME/.cache/poa-archiver/clients}"
SUBXT_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/subxt"

log() { echo "install.sh: $*"; }

mkdir -p "$DIR"
cd "$DIR"

# --- npm: @polkadot/api + @polkadot/rpc-provider ---------------------------------------------
npm_versions() { # prints "api rpc-provider types" versions from node_modules ("-" when absent), one node run
    node -e '
        const v = (p) => { try { return require(process.cwd() + "/node_modules/" + p + "/package.json").version || "-" } catch (e) { return "-" } };
        console.log(["@polkadot/api", "@polkadot/rpc-provider", "@polkadot/types"].map(v).join(" "));'
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "node/npm not found (install nodejs and npm)" >&2
    exit 1
fi

read -r api_v provider_v types_v < <(npm_versions)
if [ "$api_v" = "$POLKADOT_VERSION" ] && [ "$provider_v" = "$POLKADOT_VERSION" ] && [ "$types_v" != "-" ]; then
    log "npm: @polkadot/api@$api_v, @polkadot/rpc-provider@$provider_v (@polkadot/types@$types_v) already in $DIR/node_modules, skipped"
else
    if [ ! -f package.json ]; then
        printf '%s\n' '{' '  "name": "poa-archiver-clients",' '  "private": true,' '  "description": "Real third-party clients for the poa-archiver client checks"' '}' > package.json
        log "npm: created $DIR/package.json"
    fi
    log "npm: installing @polkadot/api@$POLKADOT_VERSION @polkadot/rpc-provider@$POLKADOT_VERSION into $DIR (found api=$api_v rpc-provider=$provider_v)"
    npm install --no-audit --no-fund "@polkadot/api@$POLKADOT_VERSION" "@polkadot/rpc-provider@$POLKADOT_VERSION"
    read -r api_v provider_v types_v < <(npm_versions)
    if [ "$api_v" != "$POLKADOT_VERSION" ] || [ "$provider_v" != "$POLKADOT_VERSION" ]; then
        log "npm: install finished but found api='$api_v' rpc-provider='$provider_v', want $POLKADOT_VERSION" >&2
        exit 1
    fi
    log "npm: installed @polkadot/api@$api_v, @polkadot/rpc-provider@$provider_v"
fi

# --- PyPI: substrate-interface in venv/ ---------------------------------------------------------
si_version() { # prints the installed substrate-interface version when it imports, or nothing
    [ -x venv/bin/python ] || return 0
    # One interpreter start: the import must work, and the version is read from the same
    # dist-info metadata that `pip show` reads (pip show alone costs ~1 s).
    venv/bin/python -c 'import substrateinterface, importlib.metadata as m; print(m.version("substrate-interface"))' 2>/dev/null || true
}

si_v="$(si_version)"
if [ "$si_v" = "$SUBSTRATE_INTERFACE_VERSION" ]; then
    log "pip: substrate-interface==$si_v already in $DIR/venv, skipped"
else
    if [ ! -x venv/bin/python ]; then
        log "pip: creating venv $DIR/venv"
        python3 -m venv venv
    fi
    log "pip: installing substrate-interface==$SUBSTRATE_INTERFACE_VERSION into $DIR/venv (found '${si_v:-none}')"
    venv/bin/python -m pip install --disable-pip-version-check "substrate-interface==$SUBSTRATE_INTERFACE_VERSION"
    si_v="$(si_version)"
    if [ "$si_v" != "$SUBSTRATE_INTERFACE_VERSION" ]; then
        log "pip: install finished but found substrate-interface '$si_v', want $SUBSTRATE_INTERFACE_VERSION" >&2
        exit 1
    fi
    log "pip: installed substrate-interface==$si_v"
fi

# --- npm: a real Substrate runtime as a peer (chopsticks + Parity's Asset Hub spec) -------------
CHOPSTICKS_VERSION=1.5.1
KNOWN_CHAINS_VERSION=1.10.3
PEER="$DIR/peer"
mkdir -p "$PEER"
peer_versions() {
    (cd "$PEER" && node -e '
        const v = (p) => { try { return require(process.cwd() + "/node_modules/" + p + "/package.json").version || "-" } catch (e) { return "-" } };
        console.log(["@acala-network/chopsticks", "@substrate/connect-known-chains"].map(v).join(" "));')
}
read -r chop_v chains_v < <(peer_versions)
if [ "$chop_v" = "$CHOPSTICKS_VERSION" ] && [ "$chains_v" = "$KNOWN_CHAINS_VERSION" ] && [ -s "$PEER/spec.json" ]; then
    log "npm: chopsticks@$chop_v and connect-known-chains@$chains_v already in $PEER, skipped"
else
    [ -f "$PEER/package.json" ] || printf '%s\n' '{' '  "name": "poa-archiver-peer",' '  "private": true' '}' > "$PEER/package.json"
    log "npm: installing @acala-network/chopsticks@$CHOPSTICKS_VERSION @substrate/connect-known-chains@$KNOWN_CHAINS_VERSION into $PEER"
    (cd "$PEER" && npm install --no-audit --no-fund "@acala-network/chopsticks@$CHOPSTICKS_VERSION" "@substrate/connect-known-chains@$KNOWN_CHAINS_VERSION")
    (cd "$PEER" && node -e 'require("fs").writeFileSync("spec.json", require("@substrate/connect-known-chains/rococo_v2_2_asset_hub").chainSpec)')
    read -r chop_v chains_v < <(peer_versions)
    if [ "$chop_v" != "$CHOPSTICKS_VERSION" ] || [ ! -s "$PEER/spec.json" ]; then
        log "npm: chopsticks install finished but found '$chop_v', want $CHOPSTICKS_VERSION" >&2
        exit 1
    fi
    log "npm: installed chopsticks@$chop_v (Asset Hub spec in $PEER/spec.json)"
fi

# --- crates.io: subxt 0.51 (tests/clients/subxt), built once into $DIR/subxt-target ------------
# Its own crate and lockfile, so subxt's dependency tree never compiles into the other test targets.
log "cargo: building subxt-check (subxt 0.51) into $DIR/subxt-target (no-op when up to date)"
cargo build --quiet --locked --manifest-path "$SUBXT_SRC/Cargo.toml" --target-dir "$DIR/subxt-target"

log "done: POA_CLIENTS_DIR=$DIR"
log "  node tests/clients/polkadot_check.mjs WS_URL EXPECTED_JSON"
log "  $DIR/venv/bin/python tests/clients/substrate_check.py WS_URL EXPECTED_JSON"
log "  $DIR/subxt-target/debug/subxt-check WS_URL NUMBER [ACCOUNT_HEX ...]"
