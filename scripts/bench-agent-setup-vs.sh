#!/usr/bin/env bash
# Compares the reference agent's pod setup (tc attach, one addPods call per pod) of this tree with the one
# of an earlier commit: builds REF in a temporary worktree, then runs examples/agent/bench/profile-setup.ts
# of each tree in turn, alternating which goes first, ROUNDS times, and prints the median of the per-run
# p50s and their ratio. Root. Usage: bash scripts/bench-agent-setup-vs.sh REF [ROUNDS] [PODS]
set -euo pipefail
ref=${1:?usage: bench-agent-setup-vs.sh REF [ROUNDS] [PODS]}
rounds=${2:-8}
pods=${3:-32}
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$root/.toolchain/bin:$PATH"
tmp=$(mktemp -d /tmp/datapath-agent-baseline.XXXXXX)
cleanup() { git -C "$root" worktree remove --force "$tmp" >/dev/null 2>&1 || rm -rf "$tmp"; }
trap cleanup EXIT
git -C "$root" worktree add --detach "$tmp" "$ref" >/dev/null
(cd "$tmp" && pnpm install --offline --frozen-lockfile >/dev/null && pnpm -r run build >/dev/null)
run() { (cd "$1/examples/agent" && pnpm exec tsx bench/profile-setup.ts tc "$pods" | sed -n 's/^total p50 \([0-9.]*\) ms$/\1/p'); }
cur=() base=()
for ((i = 0; i < rounds; i++)); do
  if ((i % 2 == 0)); then base+=("$(run "$tmp")"); cur+=("$(run "$root")")
  else cur+=("$(run "$root")"); base+=("$(run "$tmp")"); fi
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
c=$(median "${cur[@]}") b=$(median "${base[@]}")
echo "pod setup (tc) p50 over $rounds alternating runs of $pods pods: this tree $c ms (${cur[*]}), $ref $b ms (${base[*]}), ratio $(awk -v c="$c" -v b="$b" 'BEGIN {printf "%.2f", c / b}')"
