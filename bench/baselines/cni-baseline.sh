#!/usr/bin/env bash
# cni-baseline.sh -- times a CNI plugin binary the way a container runtime calls it, for the CNI
# benchmark (packages/cni/bench/run.ts) to compare datapath-cni with the reference `ptp` + `host-local`
# plugins (Debian's containernetworking-plugins) in the same run, with the same config shape.
#
#   N=100 PLUGIN=ptp CNI_PATH=/usr/lib/cni JSON_OUT=/tmp/ptp.json bench/baselines/cni-baseline.sh
#
# Steps (root only; everything happens in namespaces this script creates and removes):
#   setup    a private "host" namespace <PREFIX>-h and N pod namespaces <PREFIX>-p<i>; the plugin runs
#            inside the host namespace (nsenter --net), so its veths, routes and sysctls stay there.
#   ADD      N times, timed: config on stdin, result on stdout; then (untimed) the pod's eth0 address
#            and routes are read back with `ip` for the validation step.
#   CHECK    N times with prevResult, timed (CHECK=0 skips it).
#   DEL      N times with prevResult, timed; eth0 must be gone afterwards; one repeated DEL must succeed.
#   verify   bench/baselines/cni-summary.mjs checks every result against what the namespace holds and
#            that the host-local store is empty, prints percentiles and writes JSON_OUT.
#
# Environment:
#   N (100)  CNI_VERSION (1.0.0)  SUBNET (198.18.0.0/16, the benchmarking range)  PLUGIN (ptp)
#   CNI_PATH (/usr/lib/cni: where PLUGIN and host-local are found)  PREFIX (cnib<pid>)  CHECK (1)
#   JSON_OUT (summary file)  ENV_CLEAN (1: exec the plugin with only PATH and CNI_*; 0: inherit)
#   ROUTE_CHECK (1: require the default route and the gateway /32 in the pod)
#   CONF_TEMPLATE (a config with @CNI_VERSION@ @NAME@ @TYPE@ @SUBNET@ @DATADIR@ to use instead)
# Timing: bash's EPOCHREALTIME around the exec (bench/floor.sh times its floors the same way).
# Needs bash >= 5, iproute2, nsenter (util-linux), node, and the reference plugins in CNI_PATH
# (Debian/Ubuntu: `apt-get install containernetworking-plugins`).
set -euo pipefail

: "${N:=100}" "${CNI_VERSION:=1.0.0}" "${SUBNET:=198.18.0.0/16}" "${PLUGIN:=ptp}" "${CNI_PATH:=/usr/lib/cni}"
: "${PREFIX:=cnib$$}" "${CHECK:=1}" "${JSON_OUT:=}" "${ENV_CLEAN:=1}" "${ROUTE_CHECK:=1}" "${CONF_TEMPLATE:=}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fail() {
  echo "cni-baseline: $*" >&2
  exit 1
}

[[ $(id -u) == 0 ]] || fail "needs root (it creates network namespaces)"
[[ -n ${EPOCHREALTIME:-} ]] || fail "needs bash >= 5 (EPOCHREALTIME)"
for tool in ip nsenter node; do command -v "$tool" >/dev/null || fail "$tool is missing"; done

find_plugin() { # name -> absolute path in CNI_PATH
  local dir
  IFS=: read -ra dirs <<<"$CNI_PATH"
  for dir in "${dirs[@]}"; do [[ -x $dir/$1 ]] && { echo "$dir/$1"; return; }; done
  return 1
}
plugin_bin=$(find_plugin "$PLUGIN") || fail "plugin $PLUGIN not found in CNI_PATH=$CNI_PATH"
find_plugin host-local >/dev/null ||
  fail "host-local not found in CNI_PATH=$CNI_PATH (Debian/Ubuntu: apt-get install containernetworking-plugins)"

net="${PREFIX}-net"
hostns="${PREFIX}-h"
work=$(mktemp -d "/tmp/cni-baseline.${PREFIX}.XXXXXX")
store="$work/store"
made=()
teardown() {
  local rc=$?
  set +e
  for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$work"
  exit "$rc"
}
trap teardown EXIT INT TERM

mkns() {
  ip netns add "$1"
  made+=("$1")
}
mkns "$hostns"
ip -n "$hostns" link set lo up
for ((i = 1; i <= N; i++)); do mkns "${PREFIX}-p$i"; done

if [[ -n $CONF_TEMPLATE ]]; then
  sed -e "s|@CNI_VERSION@|$CNI_VERSION|g" -e "s|@NAME@|$net|g" -e "s|@TYPE@|$PLUGIN|g" \
    -e "s|@SUBNET@|$SUBNET|g" -e "s|@DATADIR@|$store|g" "$CONF_TEMPLATE" >"$work/conf.json"
else
  printf '{"cniVersion":"%s","name":"%s","type":"%s","ipMasq":false,"ipam":{"type":"host-local","ranges":[[{"subnet":"%s"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"%s"}}' \
    "$CNI_VERSION" "$net" "$PLUGIN" "$SUBNET" "$store" >"$work/conf.json"
fi

# The timed loop, run with the network namespace switched to the private host namespace (the mount
# namespace is the same, so /run/netns and $work are visible as they are here).
export N PREFIX CHECK ENV_CLEAN CNI_PATH plugin_bin work
nsenter --net="/run/netns/$hostns" bash -s <<'TIMED'
set -uo pipefail
elapsed_ms() { local a=${1/./} b=${2/./} d; d=$((10#$b - 10#$a)); printf '%d.%03d' $((d / 1000)) $((d % 1000)); }
call() { # COMMAND i stdin stdout -> appends the elapsed ms to $work/times-COMMAND; returns the plugin's status
  local launcher=(env) t0 t1 rc
  [[ $ENV_CLEAN == 1 ]] && launcher=(env -i "PATH=$PATH")
  t0=$EPOCHREALTIME
  "${launcher[@]}" CNI_COMMAND="$1" CNI_CONTAINERID="${PREFIX}-c$2" CNI_NETNS="/run/netns/${PREFIX}-p$2" \
    CNI_IFNAME=eth0 CNI_PATH="$CNI_PATH" "$plugin_bin" <"$3" >"$4" 2>>"$work/plugin.stderr"
  rc=$?
  t1=$EPOCHREALTIME
  elapsed_ms "$t0" "$t1" >>"$work/times-$1"
  echo >>"$work/times-$1"
  return "$rc"
}
phase_start=$EPOCHREALTIME
for ((i = 1; i <= N; i++)); do
  call ADD "$i" "$work/conf.json" "$work/add-$i.json" || { echo "ADD $i failed: $(cat "$work/add-$i.json")" >&2; exit 1; }
  ip -n "${PREFIX}-p$i" -4 -o addr show dev eth0 >"$work/pod-addr-$i"
  ip -n "${PREFIX}-p$i" -4 route show >"$work/pod-route-$i"
done
add_end=$EPOCHREALTIME
# The config with each ADD result as prevResult: what a runtime sends on CHECK and DEL (untimed).
node -e '
  const fs = require("fs");
  const [work, n] = process.argv.slice(1);
  for (let i = 1; i <= Number(n); i++) {
    const conf = JSON.parse(fs.readFileSync(`${work}/conf.json`, "utf8"));
    conf.prevResult = JSON.parse(fs.readFileSync(`${work}/add-${i}.json`, "utf8"));
    fs.writeFileSync(`${work}/prev-${i}.json`, JSON.stringify(conf));
  }' "$work" "$N"
check_start=$EPOCHREALTIME
if [[ $CHECK == 1 ]]; then
  for ((i = 1; i <= N; i++)); do
    call CHECK "$i" "$work/prev-$i.json" "$work/check-$i.out" || { echo "CHECK $i failed: $(cat "$work/check-$i.out")" >&2; exit 1; }
  done
fi
check_end=$EPOCHREALTIME
for ((i = 1; i <= N; i++)); do
  call DEL "$i" "$work/prev-$i.json" "$work/del-$i.out" || { echo "DEL $i failed: $(cat "$work/del-$i.out")" >&2; exit 1; }
  if ip -n "${PREFIX}-p$i" link show dev eth0 >/dev/null 2>&1; then echo "DEL $i left eth0 behind" >&2; exit 1; fi
done
del_end=$EPOCHREALTIME
# DEL is idempotent: repeating it for a pod that is already gone must succeed (not timed).
cp "$work/times-DEL" "$work/times-DEL.keep"
call DEL 1 "$work/prev-1.json" "$work/del-again.out" || { echo "repeated DEL failed: $(cat "$work/del-again.out")" >&2; exit 1; }
mv "$work/times-DEL.keep" "$work/times-DEL"
printf '%s %s %s\n' "$(elapsed_ms "$phase_start" "$add_end")" "$(elapsed_ms "$check_start" "$check_end")" \
  "$(elapsed_ms "$check_end" "$del_end")" >"$work/phases"
TIMED

N="$N" PREFIX="$PREFIX" WORK="$work" STORE="$store/$net" CNI_VERSION="$CNI_VERSION" SUBNET="$SUBNET" \
  PLUGIN="$PLUGIN" CHECK="$CHECK" ROUTE_CHECK="$ROUTE_CHECK" JSON_OUT="$JSON_OUT" node "$here/cni-summary.mjs"
