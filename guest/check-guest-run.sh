#!/bin/bash
# Runs a guest-kit guest under a VMM command and checks the result.
#
#   check-guest-run.sh [options] -- <vmm command...>
#
#   --expect-exit N     exit status the VMM must end with (default 1: QEMU's
#                       isa-debug-exit turns the guest's exit(0) into 1)
#   --no-summary        the guest prints no SUMMARY line (e.g. demo)
#   --expect-line RE    an output line must match the extended regex (repeatable)
#   --input TEXT        after the guest prints READY, write TEXT (printf %b
#                       escapes) to the VMM's stdin, which stays open until it exits
#   --timeout S         kill the VMM after S seconds (default 60)
#
# Unless --no-summary, exactly one "SUMMARY: <n> tests, 0 failures" line must
# appear. Exits 0 on success, 1 on failure, 77 (skip) when /dev/kvm is unusable.
set -u
expect_exit=1
summary=1
timeout_s=60
input=""
have_input=0
patterns=()
while [ $# -gt 0 ]; do
    case "$1" in
        --expect-exit) expect_exit=$2; shift 2 ;;
        --no-summary) summary=0; shift ;;
        --expect-line) patterns+=("$2"); shift 2 ;;
        --input) input=$2; have_input=1; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "check-guest-run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "usage: check-guest-run.sh [options] -- <vmm command...>" >&2
    exit 2
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
    if [ "${VIREO_REQUIRE_KVM:-}" = 1 ]; then
        echo "FAIL: /dev/kvm is missing or not accessible, and VIREO_REQUIRE_KVM=1"
        exit 1
    fi
    echo "SKIP: /dev/kvm is missing or not accessible"
    exit 77
fi

out=$(mktemp)
fifo=""
cleanup() { rm -f "$out" ${fifo:+"$fifo"}; }
trap cleanup EXIT

if [ $have_input -eq 1 ]; then
    fifo=$(mktemp -u)
    mkfifo "$fifo"
    timeout -k 5 "$timeout_s" "$@" <"$fifo" >"$out" 2>&1 &
    pid=$!
    exec 3>"$fifo"
    for _ in $(seq 1 $((timeout_s * 10))); do
        if grep -q READY "$out" || ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    printf '%b' "$input" >&3
    wait "$pid"
    status=$?
    exec 3>&-
else
    timeout -k 5 "$timeout_s" "$@" </dev/null >"$out" 2>&1
    status=$?
fi

tr -d '\r' <"$out" >"$out.clean" && mv "$out.clean" "$out"
cat "$out"
echo "--- exit status $status"

failed=0
fail() {
    echo "CHECK FAILED: $*"
    failed=1
}
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    fail "timed out after ${timeout_s}s"
elif [ "$status" -ne "$expect_exit" ]; then
    fail "exit status $status, expected $expect_exit"
fi
if [ $summary -eq 1 ]; then
    count=$(grep -c '^SUMMARY: ' "$out")
    if [ "$count" -ne 1 ]; then
        fail "$count SUMMARY lines, expected exactly one"
    elif ! grep -Eq '^SUMMARY: [0-9]+ tests, 0 failures' "$out"; then
        fail "$(grep '^SUMMARY: ' "$out")"
    fi
fi
for re in "${patterns[@]}"; do
    grep -Eq "$re" "$out" || fail "no output line matches /$re/"
done
exit $failed
