#!/usr/bin/env bash
# Benchmark our NPB kernels (class A by default) at -n 1, 2, 4 and compare their Mop/s with
# reference figures. See images/npb/README.md "Benchmark".
#
#   images/npb/bench.sh [--ref DIR] [--bin DIR] [--class C] [--procs 1,2,4]
#                       [--kernels ep,is,cg,mg,ft] [--repeat N]
#
# --ref DIR   a build of the NAS reference (NPB3.4-MPI, binaries named <kernel>.<CLASS>.x, e.g.
#             NPB3.4-MPI/bin made outside this repository). Each repeat runs ours and then the
#             reference back to back, so both see the same machine load; the ratio is
#             best(ours) / best(reference) over the repeats.
#             Without --ref the ratio is against the class A, -n 2 figures quoted in the issue
#             (upper end of each quoted range; NPB 3.4 Fortran, gfortran -O2, MPICH, this host);
#             other process counts and classes then get no ratio.
# --bin DIR   our binaries (default: $NPB_BIN_DIR, else <repo>/build/npb/bin)
# --repeat N  runs per kernel and process count (default 3); best and median are printed
#
# A run whose output lacks "Verification = SUCCESSFUL" is shown as FAILED and is not used;
# the exit code is 1 if any of our runs failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${NPB_BIN_DIR:-$here/../../build/npb/bin}
ref=""
cls=A
procs=1,2,4
kernels=ep,is,cg,mg,ft
repeat=3

usage() {
    sed -n '2,/^set -e/p' "$0" | sed -e '/^set -e/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --ref) ref=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --class) cls=$2; shift 2 ;;
    --procs) procs=$2; shift 2 ;;
    --kernels) kernels=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    -h | --help) usage ;;
    *) echo "bench.sh: unknown argument $1" >&2; usage ;;
    esac
done
cls=$(printf %s "$cls" | tr a-z A-Z)
[ -d "$bin" ] && bin=$(cd "$bin" && pwd)

# The issue's reference figures: NPB 3.4 MPI, class A, mpiexec -n 2 on this host.
issue_ref() {
    [ "$cls" = A ] && [ "$2" = 2 ] || return 0
    case $1 in
    ep) echo 200 ;; is) echo 502 ;; cg) echo 3554 ;; mg) echo 7312 ;; ft) echo 4948 ;;
    esac
}

# run_one BINARY ARGS... -> prints Mop/s, or FAILED
run_one() {
    local n=$1 out
    shift
    if out=$(timeout 600 mpiexec -n "$n" "$@" 2>&1) &&
        grep -Eq '^ *Verification *= *SUCCESSFUL' <<<"$out"; then
        awk -F= '/Mop\/s total/ { gsub(/ /, "", $2); print $2; exit }' <<<"$out"
    else
        echo FAILED
    fi
}

# stats VALUES... -> "best median" of the numeric values ("-" if none)
stats() {
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "- -"; exit }
            med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.1f %.1f\n", v[NR], med
        }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f\n", a / b }'; }

echo "NPB benchmark: class $cls, processes $procs, $repeat repeat(s), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "ours: $bin"
if [ -n "$ref" ]; then
    echo "reference: $ref (measured side by side)"
else
    echo "reference: figures quoted in the issue (class A, -n 2 only; measured on another day,"
    echo "           so the ratio is indicative: use --ref DIR for a side-by-side comparison)"
fi
echo "cores online: $(getconf _NPROCESSORS_ONLN); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-6s %3s  %10s %10s  %10s %10s  %6s\n' kernel n "ours best" "ours med" "ref best" "ref med" ratio

failed=0
for k in ${kernels//,/ }; do
    for n in ${procs//,/ }; do
        ours=() theirs=()
        for ((i = 0; i < repeat; i++)); do
            ours+=("$(run_one "$n" "$bin/$k" "$cls")")
            [ -n "$ref" ] && theirs+=("$(run_one "$n" "$ref/$k.$cls.x")")
        done
        case " ${ours[*]} " in *" FAILED "*) failed=1 ;; esac
        read -r ob om <<<"$(stats "${ours[@]}")"
        if [ -n "$ref" ]; then
            read -r rb rm <<<"$(stats "${theirs[@]}")"
        else
            rb=$(issue_ref "$k" "$n") rm=-
            rb=${rb:--}
        fi
        note=""
        case " ${ours[*]} ${theirs[*]:-} " in *" FAILED "*) note="  (failed runs: ours ${ours[*]}; ref ${theirs[*]:-})" ;; esac
        printf '%-6s %3s  %10s %10s  %10s %10s  %6s%s\n' "$k" "$n" "$ob" "$om" "$rb" "$rm" "$(ratio "$ob" "$rb")" "$note"
    done
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $failed
