#!/usr/bin/env bash
# floor.sh -- start-up floors for bench/run.ts, timed exactly as bench/baselines/cni-baseline.sh times a
# plugin: `env -i PATH=… CNI_*=…` exec of the program with the config on stdin and stdout/stderr to files,
# wall time from bash's EPOCHREALTIME; the caller runs it inside the private host namespace HOSTNS
# (nsenter --net), as cni-baseline.sh does.
#   floor.sh exec HOSTNS PODNS N CONF OUT BIN...   N runs of each BIN (CNI_COMMAND=ADD, interleaved);
#                                                  prints "BIN ms ms ms ..." per BIN
#   floor.sh vethdel HOSTNS PODNS N                N times: make a veth pair HOSTNS/PODNS with ip (untimed),
#                                                  then time `ip -n PODNS link del`; prints "vethdel ms ..."
# Root only; touches nothing but the two namespaces given.
set -euo pipefail
mode=$1 host=$2 pod=$3 n=$4
shift 4
ms() { local a=${1/./} b=${2/./}; local d=$((10#$b - 10#$a)); printf '%d.%03d' $((d / 1000)) $((d % 1000)); }
case $mode in
exec)
  conf=$1 out=$2
  shift 2
  declare -A times
  for ((i = 0; i < n; i++)); do
    for bin in "$@"; do
      t0=$EPOCHREALTIME
      env -i "PATH=$PATH" CNI_COMMAND=ADD CNI_CONTAINERID="floor-$i" \
        CNI_NETNS="/run/netns/$pod" CNI_IFNAME=eth0 CNI_PATH=/nonexistent "$bin" <"$conf" >"$out" 2>>"$out.err" || true
      t1=$EPOCHREALTIME
      times[$bin]="${times[$bin]:-} $(ms "$t0" "$t1")"
    done
  done
  for bin in "$@"; do echo "$bin${times[$bin]}"; done
  ;;
vethdel)
  line=vethdel
  for ((i = 0; i < n; i++)); do
    ip -n "$host" link add fl0 type veth peer name fl1 netns "$pod"
    ip -n "$host" link set fl0 up
    ip -n "$pod" link set fl1 up
    t0=$EPOCHREALTIME
    ip -n "$pod" link del fl1
    t1=$EPOCHREALTIME
    line="$line $(ms "$t0" "$t1")"
  done
  echo "$line"
  ;;
*) echo "floor.sh: unknown mode $mode" >&2; exit 2 ;;
esac
