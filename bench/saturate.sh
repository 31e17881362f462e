#!/usr/bin/env bash
# Run a command with every core kept busy by another process, to shake out races
# that only lose on a loaded machine. One busy loop per core (or SATURATE_LOOPS);
# the loops end with the command, whatever its exit status.
#
#   bench/saturate.sh .venv/bin/python -m pytest -q tests/test_races.py
#   RUNS=50 bench/saturate.sh .venv/bin/python -m pytest -q -x -p no:cacheprovider -m pg \
#       tests/test_settlement.py tests/test_races.py
set -uo pipefail

loops=${SATURATE_LOOPS:-$(nproc)}
runs=${RUNS:-1}
pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done; }
trap stop EXIT
for _ in $(seq "$loops"); do
  python3 -c 'while True: pass' &
  pids+=($!)
done

passed=0
start=$(date +%s)
for run in $(seq "$runs"); do
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "saturate: run $run of $runs failed" >&2
    break
  fi
done
echo "saturate: $passed of $runs runs passed beside $loops busy loops in $(($(date +%s) - start)) s"
[ "$passed" -eq "$runs" ]
