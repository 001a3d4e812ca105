#!/usr/bin/env bash
# The demo through the host agent: starts a vireod of its own (state, runtime
# files and a datastore in a temporary folder, removed at the end), creates
# the demo VM through its API, powers it on and follows its console until
# the guest powers off, then shows the host's events. scripts/demo.sh runs it
# (inside the emulated KVM on a host without one).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin
work=$(mktemp -d /tmp/vireo-demo-XXXXXX)
export VIREO_STATE_DIR=$work/state VIREO_RUN_DIR=$work/run
agent=
cleanup() {
  [[ -n $agent ]] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
  pkill -KILL -f -- "--control-socket $work/" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/datastore"
"$bin/vireod" --log-level warn &
agent=$!
for _ in $(seq 100); do [[ -S $VIREO_RUN_DIR/vireod.sock ]] && break; sleep 0.1; done
echo "demo: vireod is up (API on $VIREO_RUN_DIR/vireod.sock)"
"$bin/vireo" datastore add demo "$work/datastore"
"$bin/vireo" vm create demo --datastore demo --kernel build/guest/demo.elf --cpus 2 --memory 256M
"$bin/vireo" vm start demo
echo "demo: the guest's console, through vireod:"
"$bin/vireo" vm console demo --follow
echo "demo: the host's events:"
"$bin/vireo" event list
