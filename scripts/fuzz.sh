#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module for a time budget each and
# records, per target and run, the executions and the new coverage
# ("new interesting" inputs) Go's fuzzer reports, in scripts/fuzz.log
# (committed: the figures add up across runs). New interesting inputs up to
# 4 KiB are kept in the package's testdata/fuzz/<Target>/ (at most 32 per
# target), so that the committed corpora grow with the runs and stay small.
#
# Targets are found by name (func Fuzz* in *_test.go), so targets added
# later (the ONNX graph importer's) are included without editing this file.
#
# Usage: scripts/fuzz.sh [-t SECONDS] [-p PATTERN] [-u EXECS] [-j WORKERS] [-k]
#   -t SECONDS  budget per target per run (default 60)
#   -u EXECS    skip targets whose executions in scripts/fuzz.log already
#               add up to EXECS (e.g. 10000000, the issue's figure)
#   -p PATTERN  only targets whose "package/Target" matches this grep -E pattern
#   -j WORKERS  fuzzing workers per target (default 1: the machine is
#               shared; 2 under nice -n 19 uses both cores when they idle)
#   -k          keep going through the target list forever (bursts), until killed
#   --totals    print the executions per target summed over scripts/fuzz.log
#   --table     the same as the README's Markdown table
# Creating the file $FUZZ_STOP (default /tmp/ckpt-fuzz.stop) stops the
# script between two targets (killing it mid-run loses that run's figures).
# It runs one fuzzing worker (-parallel=1) unless -j says more. New
# interesting inputs are minimized for at most 500 executions (Go's
# default, 60 s, took most of a short budget, and a minimization still
# running when the budget ends has its executions dropped from the count).
set -euo pipefail
cd "$(dirname "$0")/.."
log=scripts/fuzz.log
budget=60 pattern=. forever=0 until=0 workers=1
while [ $# -gt 0 ]; do
	case $1 in
	-t) budget=$2; shift 2 ;;
	-p) pattern=$2; shift 2 ;;
	-u) until=$2; shift 2 ;;
	-j) workers=$2; shift 2 ;;
	-k) forever=1; shift ;;
	--totals)
		awk -F'\t' 'NR > 1 && $7 == "ok" { e[$2"/"$3] += $5; n[$2"/"$3] += $6; s[$2"/"$3] += $4 }
			END { for (k in e) printf "%-60s %12d execs %6d new %7ds\n", k, e[k], n[k], s[k] }' "$log" | sort
		exit 0 ;;
	--table)
		echo '| target | executions | new inputs | fuzzing budget | 10M reached |'
		echo '|---|---:|---:|---:|:---:|'
		awk -F'\t' 'function commas(x,  s, out) { s = sprintf("%d", x); out = ""
				while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
				return s out }
			NR > 1 && $7 == "ok" { e[$2"/"$3] += $5; n[$2"/"$3] += $6; s[$2"/"$3] += $4 }
			END { for (k in e) printf "| `%s` | %s | %d | %ds | %s |\n", k, commas(e[k]), n[k], s[k], (e[k] >= 10000000 ? "yes" : "no") }' "$log" | sort
		exit 0 ;;
	*) echo "usage: scripts/fuzz.sh [-t SECONDS] [-p PATTERN] [-u EXECS] [-j WORKERS] [-k] | --totals | --table" >&2; exit 2 ;;
	esac
done
[ -f "$log" ] || printf 'date\tpackage\ttarget\tseconds\texecs\tnew_interesting\tresult\n' > "$log"
mod=$(go list -m)
targets() {
	grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./.git/' | sort | while read -r f; do
		dir=$(dirname "$f")
		for t in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
			echo "$dir $t"
		done
	done | grep -E -- "$pattern" || true
}
cache=$(go env GOCACHE)/fuzz
stop=${FUZZ_STOP:-/tmp/ckpt-fuzz.stop}
rm -f "$stop"
while :; do
	targets | while read -r dir t; do
		if [ -e "$stop" ]; then
			echo "fuzz.sh: $stop exists, stopping" >&2
			exit 0
		fi
		pkg=${dir#./}
		if [ "$until" -gt 0 ]; then
			sofar=$(awk -F'\t' -v k="$pkg" -v t="$t" '$2 == k && $3 == t && $7 == "ok" { e += $5 } END { print e + 0 }' "$log")
			[ "$sofar" -ge "$until" ] && continue
		fi
		out=$(mktemp)
		result=ok
		go test -run '^$' -fuzz "^$t\$" -fuzztime "${budget}s" -fuzzminimizetime 500x -parallel "$workers" "./$pkg" > "$out" 2>&1 || result=FAIL
		line=$(grep -E 'fuzz: elapsed: .*execs: ' "$out" | tail -1 || true)
		execs=$(sed -n 's/.*execs: \([0-9]*\).*/\1/p' <<<"$line")
		new=$(sed -n 's/.*new interesting: \([0-9]*\).*/\1/p' <<<"$line")
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$pkg" "$t" "$budget" "${execs:-0}" "${new:-0}" "$result" >> "$log"
		echo "fuzz.sh: $pkg $t: ${execs:-0} execs, ${new:-0} new, $result" >&2
		if [ "$result" != ok ]; then
			tail -30 "$out" >&2
		fi
		# Keep the small new inputs as committed seeds.
		src="$cache/$mod/$pkg/$t"
		if [ -d "$src" ]; then
			dst="$pkg/testdata/fuzz/$t"
			mkdir -p "$dst"
			have=$(ls "$dst" | wc -l)
			for c in $(ls -t "$src"); do
				[ "$have" -ge 32 ] && break
				[ -e "$dst/$c" ] && continue
				if [ "$(stat -c %s "$src/$c")" -le 4096 ]; then
					cp "$src/$c" "$dst/$c"
					have=$((have + 1))
				fi
			done
			rmdir "$dst" 2>/dev/null || true
		fi
		rm -f "$out"
	done
	[ "$forever" = 1 ] && [ ! -e "$stop" ] || break
done
