#!/usr/bin/env bash
# The zmr demo: installs missing packages, builds (Release) into build/, starts a local cluster
# (a coordinator and 2 workers on loopback), generates a ~50 MB sample corpus if absent, runs a
# word count with a live progress display, prints the 10 most frequent words, and stops the
# cluster on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

scripts/install-deps.sh

echo "== building (Release) into build/" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DZMR_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"${ZMR_JOBS:-2}"

DATA=${ZMR_DEMO_DATA:-$ROOT/sample-data/corpus}
if [ ! -s "$DATA/part-04.txt" ]; then
  echo "== generating a ~50 MB sample corpus in $DATA" >&2
  /usr/bin/python3 scripts/gen_corpus.py --out "$DATA" --mb 50 --files 5 --seed 1
fi

CLUSTER=$ROOT/.zmr-demo
PORT_BASE=${ZMR_DEMO_PORT_BASE:-5555}
cleanup() { deploy/local-cluster.sh stop --dir "$CLUSTER" 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "== starting a local cluster (logs in $CLUSTER)" >&2
deploy/local-cluster.sh start --dir "$CLUSTER" --workers 2 --slots 1 --bin build \
  --port-base "$PORT_BASE" >/dev/null
export ZMR_COORDINATOR=tcp://127.0.0.1:$((PORT_BASE + 1))

OUT=$ROOT/sample-data/wordcount-$(date +%Y%m%d-%H%M%S)
echo "== zmr submit --app wordcount --input $DATA --output $OUT --maps 8 --reduces 2 --wait" >&2
build/client/zmr submit --app wordcount --input "$DATA" --output "$OUT" --maps 8 --reduces 2 \
  --name demo-wordcount --wait

echo
echo "Top 10 words:"
# Highest count first, ties by word; awk reads everything (no SIGPIPE under pipefail).
cat "$OUT"/part-* | sort -t "$(printf '\t')" -k2,2nr -k1,1 | \
  awk -F'\t' 'NR <= 10 { printf "  %-12s %s\n", $1, $2 }'
echo
echo "Output: $OUT (part-00000, part-00001, _SUCCESS)"
