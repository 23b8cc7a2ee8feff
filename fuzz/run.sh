#!/usr/bin/env bash
# Runs cargo-fuzz targets one after another (niced) and prints one summary
# line each: target, seconds, execs, corpus files/bytes, crash artifacts.
# Inputs: fuzz/seeds/TARGET (hand-written) and fuzz/corpus/TARGET (a small
# sample of a past minimized corpus), both committed; the corpus grows in
# fuzz/corpus-full/TARGET (local). `fuzz/run.sh --minimize TARGET...`
# merges all three into fuzz/corpus-min/TARGET (local, coverage-minimal)
# and replaces fuzz/corpus/TARGET with at most 150 of its files up to
# 2 KB, spread over the sizes, so what is committed stays small.
#   fuzz/run.sh [--seconds N] TARGET...      (default 600 s each)
#   fuzz/run.sh --minimize TARGET...
# Needs nightly and cargo-fuzz: rustup toolchain install nightly
# --profile minimal; cargo install cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")"
secs=600
mode=run
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) secs=$2; shift 2 ;;
        --minimize) mode=min; shift ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--seconds N | --minimize] TARGET..." >&2; exit 2; }
mkdir -p logs
for t in "$@"; do
    mkdir -p "corpus-full/$t" "corpus/$t" "seeds/$t"
    if [ "$mode" = min ]; then
        rm -rf "corpus-min/$t"
        mkdir -p "corpus-min/$t"
        nice -n 10 cargo +nightly fuzz run -O "$t" "corpus-min/$t" "corpus-full/$t" "corpus/$t" "seeds/$t" \
            -- -merge=1 >"logs/$t.merge.log" 2>&1
        rm -rf "corpus/$t"
        mkdir -p "corpus/$t"
        mapfile -t small < <(find "corpus-min/$t" -type f -size -2049c -printf '%s %p\n' | sort -n | cut -d' ' -f2-)
        n=${#small[@]}
        step=$(( n > 150 ? (n + 149) / 150 : 1 ))
        for ((i = 0; i < n; i += step)); do cp "${small[$i]}" "corpus/$t/"; done
        echo "$t: minimized corpus $(ls "corpus-min/$t" | wc -l) files; committed $(ls "corpus/$t" | wc -l) files, $(du -sb "corpus/$t" | cut -f1) bytes"
        continue
    fi
    start=$(date +%s)
    rc=0
    nice -n 10 cargo +nightly fuzz run -O "$t" "corpus-full/$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"logs/$t.log" 2>&1 || rc=$?
    took=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo "?")
    crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
    echo "$t: ${took}s, ${execs} execs, corpus $(ls "corpus-full/$t" | wc -l) files $(du -sb "corpus-full/$t" | cut -f1) bytes, crash artifacts ${crashes}, exit ${rc}"
done
