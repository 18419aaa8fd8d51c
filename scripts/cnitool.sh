#!/usr/bin/env bash
# Builds cnitool, containernetworking/cni's command-line client of libcni (the library containerd, CRI-O
# and podman's CNI backend call plugins through), into .toolchain/bin/cnitool for the privileged tests
# that drive our plugin as a runtime would (packages/cni-plugin/test/cnitool.priv.test.ts). Cached: does
# nothing when the binary is there and answers.
#
# Offline with respect to Go: no module proxy. Debian's golang-github-appc-cni-dev installs libcni's Go
# sources under /usr/share/gocode but leaves out cnitool's main package, so its one file (cnitool.go) is
# taken from the Debian source package of the same version (downloaded with apt through a private
# deb-src list: the machine's apt configuration is not touched) and compiled in GOPATH mode against the
# installed libcni. scripts/setup.sh installs the Debian packages (golang-go, golang-github-appc-cni-dev,
# containernetworking-plugins) and runs this script.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.toolchain/bin/cnitool
WORK=$ROOT/.toolchain/cnitool-build
say() { printf 'cnitool: %s\n' "$*" >&2; }

if [ -x "$OUT" ]; then
  usage=$("$OUT" 2>&1 || true)
  [[ $usage == *"cnitool add"* ]] && exit 0
fi
command -v go >/dev/null || { say "needs Go (Debian package golang-go): run scripts/setup.sh"; exit 1; }
GOCODE=/usr/share/gocode
[ -d "$GOCODE/src/github.com/containernetworking/cni/libcni" ] ||
  { say "needs libcni's sources (Debian package golang-github-appc-cni-dev): run scripts/setup.sh"; exit 1; }
version=$(dpkg-query -W -f='${Version}' golang-github-appc-cni-dev)
. /etc/os-release
say "building $OUT from golang-github-appc-cni $version (${VERSION_CODENAME})"

rm -rf "$WORK"
mkdir -p "$WORK/apt/sources" "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/src" \
  "$WORK/gopath/src/cnitool" "$ROOT/.toolchain/bin"
cat >"$WORK/apt/sources/deb-src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_private=(
  -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$WORK/apt/sources"
  -o "Dir::State::Lists=$WORK/apt/lists" -o "Dir::Cache=$WORK/apt/cache" -o "APT::Sandbox::User=root"
)
apt-get "${apt_private[@]}" -qq update
(cd "$WORK/src" && apt-get "${apt_private[@]}" -qq source --download-only "golang-github-appc-cni=$version" >/dev/null)
orig=$(ls "$WORK"/src/golang-github-appc-cni_*.orig.tar.*)
tar -xf "$orig" -C "$WORK/gopath/src/cnitool" --wildcards --strip-components=2 '*/cnitool/cnitool.go'
(
  cd "$WORK/gopath/src/cnitool"
  GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0 GOCACHE="$WORK/gocache" \
    GOPATH="$WORK/gopath:$GOCODE" go build -o "$OUT.tmp" .
)
mv "$OUT.tmp" "$OUT"
rm -rf "$WORK"
say "built $OUT"
