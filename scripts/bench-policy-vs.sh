#!/usr/bin/env bash
# Compares the policy engine of this tree with the one of an earlier commit in the same run
# (packages/policy/bench/compare.ts): builds REF in a temporary worktree, then runs both engines in one
# process. Usage: bash scripts/bench-policy-vs.sh REF   e.g. bash scripts/bench-policy-vs.sh 463644f
set -euo pipefail
ref=${1:?usage: bench-policy-vs.sh REF}
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$root/.toolchain/bin:$PATH"
tmp=$(mktemp -d /tmp/datapath-policy-baseline.XXXXXX)
cleanup() { git -C "$root" worktree remove --force "$tmp" >/dev/null 2>&1 || rm -rf "$tmp"; }
trap cleanup EXIT
git -C "$root" worktree add --detach "$tmp" "$ref" >/dev/null
(cd "$tmp" && pnpm install --offline --frozen-lockfile >/dev/null && pnpm --filter '@datapath/policy...' run build >/dev/null)
cd "$root/packages/policy"
POLICY_BASELINE="$tmp/packages/policy" pnpm exec tsx bench/compare.ts
