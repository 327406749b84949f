#!/usr/bin/env bash
# zmr's benchmark harness (issue 6): runs zmr and its peers side by side on generated inputs,
# checks that every peer's output equals zmr's, and prints a table of medians and zmr/peer ratios.
#
#   bench/run.sh [--quick] [--only NAME[,NAME...]] [--repeats N] [--keep] [--profile]
#
#   --quick      reduced inputs and repeats (the whole run in about two minutes)
#   --only       run only these benchmarks: wordcount sort overhead latency recovery scale memory
#   --repeats N  repeats of the timed runs (default 3; 2 with --quick)
#   --keep       keep the run directory (logs, outputs) instead of deleting it
#   --profile    instead of the benchmarks: one wordcount (with --only sort: one sort) with the
#                workers under `perf record -g`, then the top functions of zmr-task and zmr-worker
#
# Environment: ZMR_BUILD_DIR (a Release build to use as is; default: build into build-bench/),
# ZMR_BENCH_CACHE (compiled tools and generated inputs; default bench/.cache), TMPDIR (the run
# directory: clusters' work dirs, outputs, logs; removed at exit).
#
# Exit status: 0 when every benchmark ran and every check passed; 1 when an output differed from
# zmr's or a job did not complete; 2 on a usage error. Timings are wall-clock seconds on whatever
# else the machine is doing: nothing here asserts on speed.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAMES=(wordcount sort overhead latency recovery scale memory)

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

QUICK=0 ONLY="" REPEATS="" KEEP=0 PROFILE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --only) [ $# -ge 2 ] || usage; ONLY=$2; shift 2 ;;
    --repeats) [ $# -ge 2 ] || usage; REPEATS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --profile) PROFILE=1; shift ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
if [ -n "$ONLY" ]; then
  for name in ${ONLY//,/ }; do
    case " ${BENCH_NAMES[*]} " in
      *" $name "*) ;;
      *) echo "run.sh: unknown benchmark '$name' (known: ${BENCH_NAMES[*]})" >&2; exit 2 ;;
    esac
  done
fi
if [ -z "$REPEATS" ]; then
  REPEATS=$([ $QUICK -eq 1 ] && echo 2 || echo 3)
fi
case "$REPEATS" in ''|*[!0-9]*|0) echo "run.sh: --repeats must be a positive integer" >&2; exit 2 ;; esac

CACHE=${ZMR_BENCH_CACHE:-$ROOT/bench/.cache}
TOOLS=$CACHE/bin
DATA=$CACHE/data
MiB=$((1024 * 1024))

log() { echo "[bench] $*" >&2; }
die() { echo "[bench] error: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Processes and clean-up. Every long-running process this script starts is in PIDS; the EXIT trap
# stops them (by pid: TERM, then KILL) and removes the run directory.

PIDS=()
RUN_DIR=""

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# stop_pids PID...: SIGTERM, up to 10 s for them to exit, then SIGKILL; reaps them.
stop_pids() {
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  local p alive
  for _ in $(seq 100); do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
  for p in "$@"; do wait "$p" 2>/dev/null || true; forget_pid "$p"; done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ ${#PIDS[@]} -gt 0 ]; then stop_pids "${PIDS[@]}"; fi
  if [ -n "$RUN_DIR" ] && [ -d "$RUN_DIR" ]; then
    if [ $KEEP -eq 1 ]; then log "run directory kept: $RUN_DIR"; else rm -rf "$RUN_DIR"; fi
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# All descendants of a pid (children first), by walking pgrep -P.
descendants() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null || true); do
    echo "$child"
    descendants "$child"
  done
}

# ---------------------------------------------------------------------------------------------
# Numbers.

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
seconds_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e6 }'; }

# median X... (the mean of the middle two for an even count)
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR == 0) exit 1; if (NR % 2) printf "%.3f", v[(NR + 1) / 2];
          else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# percentile P X... (nearest rank)
percentile() {
  local p=$1; shift
  printf '%s\n' "$@" | sort -g | awk -v p="$p" '{ v[NR] = $1 }
    END { r = int((p / 100) * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR;
          printf "%.1f", v[r] }'
}

div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (b == 0) print "-"; else printf f, a / b }'; }
human_bytes() {
  awk -v b="$1" 'BEGIN { if (b >= 1073741824 && b % 1073741824 == 0) printf "%d GiB", b / 1073741824;
                         else if (b >= 1073741824) printf "%.1f GiB", b / 1073741824;
                         else printf "%d MiB", b / 1048576 }'
}

# ---------------------------------------------------------------------------------------------
# Results: one TSV row per (benchmark, measure, peer); printed as a table at the end.
#   record BENCHMARK MEASURE ZMR_VALUE [PEER PEER_VALUE]
# The ratio is zmr/peer of the two values as shown, when both are numbers.

FAILURES=0
record() {
  local bench=$1 measure=$2 zmr=$3 peer=${4:--} peer_value=${5:--} ratio="-"
  if [[ $zmr =~ ^[0-9.]+$ && $peer_value =~ ^[0-9.]+$ ]]; then ratio=$(div "$zmr" "$peer_value"); fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$bench" "$measure" "$zmr" "$peer" "$peer_value" "$ratio" \
    >>"$RUN_DIR/results.tsv"
  log "result: $bench | $measure | zmr $zmr | $peer $peer_value | zmr/peer $ratio"
}

fail() {
  FAILURES=$((FAILURES + 1))
  echo "[bench] CHECK FAILED: $*" >&2
  echo "$*" >>"$RUN_DIR/failures.txt"
}

print_table() {
  local file=$RUN_DIR/results.tsv
  [ -s "$file" ] || { echo "(no results)"; return; }
  awk -F'\t' '
    BEGIN { h[1] = "benchmark"; h[2] = "measure"; h[3] = "zmr"; h[4] = "peer"; h[5] = "peer value";
            h[6] = "zmr/peer"; for (i = 1; i <= 6; i++) w[i] = length(h[i]) }
    { n++; for (i = 1; i <= 6; i++) { c[n, i] = $i; if (length($i) > w[i]) w[i] = length($i) } }
    END {
      line(h); sep = ""; for (i = 1; i <= 6; i++) { s = ""; for (j = 0; j < w[i]; j++) s = s "-";
      sep = sep (i > 1 ? "  " : "") s } print sep
      for (r = 1; r <= n; r++) { for (i = 1; i <= 6; i++) row[i] = c[r, i];
        if (r > 1 && c[r, 1] == c[r - 1, 1]) row[1] = "";
        if (r > 1 && c[r, 1] == c[r - 1, 1] && c[r, 2] == c[r - 1, 2]) { row[2] = ""; row[3] = "" }
        line(row) }
    }
    function line(a,   i, s) { s = ""; for (i = 1; i <= 6; i++)
      s = s (i > 1 ? "  " : "") sprintf(i == 3 || i >= 5 ? "%" w[i] "s" : "%-" w[i] "s", a[i]);
      sub(/ +$/, "", s); print s }
  ' "$file"
}

# ---------------------------------------------------------------------------------------------
# Setup: packages, zmr build, tools, inputs.

install_packages() {
  local need=()
  command -v mawk >/dev/null || need+=(mawk)
  sort --version 2>/dev/null | grep -q GNU || need+=(coreutils)
  /usr/bin/python3 -c 'import distributed, dask.bag' 2>/dev/null || need+=(python3-distributed)
  command -v g++ >/dev/null || need+=(g++)
  if [ $PROFILE -eq 1 ]; then command -v perf >/dev/null || need+=(linux-perf); fi
  if [ ${#need[@]} -gt 0 ] || [ -z "${ZMR_BUILD_DIR:-}" ]; then
    # install-deps.sh installs zmr's build dependencies plus the named packages, only if missing.
    "$ROOT/scripts/install-deps.sh" "${need[@]}"
  fi
}

BIN_ZMR="" BIN_COORDINATOR="" BIN_WORKER="" BIN_SIM=""
build_zmr() {
  local build
  if [ -n "${ZMR_BUILD_DIR:-}" ]; then
    build=$ZMR_BUILD_DIR
    local type
    type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
    [ "$type" = "Release" ] || log "warning: $build is a '$type' build, not Release"
  else
    build=$ROOT/build-bench
    if [ ! -f "$build/CMakeCache.txt" ]; then
      log "configuring a Release build in $build"
      cmake -S "$ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release -DZMR_BUILD_TESTS=ON >/dev/null
    fi
    log "building zmr (Release) in $build"
    cmake --build "$build" -j"${ZMR_JOBS:-2}" \
      --target zmr zmr-coordinator zmr-worker zmr-task zmr-sim-workers >/dev/null
  fi
  BIN_ZMR=$build/client/zmr
  BIN_COORDINATOR=$build/coordinator/zmr-coordinator
  BIN_WORKER=$build/worker/zmr-worker
  BIN_SIM=$build/tests/zmr-sim-workers
  local b
  for b in "$BIN_ZMR" "$BIN_COORDINATOR" "$BIN_WORKER" "$build/worker/zmr-task"; do
    [ -x "$b" ] || die "$b is missing (build the targets zmr zmr-coordinator zmr-worker zmr-task)"
  done
}

# The project's own tools (bench/*.cc), compiled into the cache when their source changed.
build_tools() {
  mkdir -p "$TOOLS"
  local tool
  for tool in gen_text gen_records wc_ref; do
    if [ ! -x "$TOOLS/$tool" ] || [ "$ROOT/bench/$tool.cc" -nt "$TOOLS/$tool" ]; then
      log "compiling bench/$tool.cc"
      g++ -std=c++17 -O2 -Wall -Wextra -o "$TOOLS/$tool.tmp" "$ROOT/bench/$tool.cc"
      mv "$TOOLS/$tool.tmp" "$TOOLS/$tool"
    fi
  done
}

# Cache keys include a digest of the generator's source, so changing a generator regenerates.
source_tag() { sha256sum "$ROOT/bench/$1.cc" | cut -c1-8; }

# text_data BYTES FILES VOCAB ZIPF SEED: prints the directory of the cached corpus, generating it
# if absent (into a temporary name, renamed when complete).
text_data() {
  local bytes=$1 files=$2 vocab=$3 zipf=$4 seed=$5
  local dir=$DATA/text-$bytes-f$files-v$vocab-z$zipf-s$seed-$(source_tag gen_text)
  if [ ! -f "$dir/_MANIFEST" ]; then
    log "generating $(human_bytes "$bytes") of text in $dir"
    mkdir -p "$DATA"
    rm -rf "$dir.tmp"
    "$TOOLS/gen_text" --out "$dir.tmp" --bytes "$bytes" --files "$files" --vocab "$vocab" \
      --zipf "$zipf" --seed "$seed"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

record_data() {
  local records=$1
  local file=$DATA/records-$records-s1-$(source_tag gen_records).txt
  if [ ! -f "$file" ]; then
    log "generating $records 100-byte records in $file"
    mkdir -p "$DATA"
    "$TOOLS/gen_records" --out "$file.tmp" --records "$records" --seed 1
    mv "$file.tmp" "$file"
  fi
  echo "$file"
}

manifest_words() { sed -n 's/^words=//p' "$1/_MANIFEST"; }

# ---------------------------------------------------------------------------------------------
# A local cluster: a coordinator on free loopback ports (port *, read back from --ready-file) and
# N workers x 1 slot, work dirs under the given directory. One cluster at a time; CL_* describe it.

CL_DIR="" CL_WORKERS="" CL_CLIENTS="" CL_EVENTS="" CL_COORDINATOR_PID="" CL_HEARTBEAT=1000
CL_WORKER_PIDS=()
WORKER_WRAP=()  # a command prefix for workers (the --profile mode's perf record)

zmrc() { "$BIN_ZMR" --coordinator "$CL_CLIENTS" "$@"; }

worker_count() {
  zmrc --timeout-ms 20000 workers --json 2>/dev/null |
    /usr/bin/python3 -c 'import json, sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0
}

# wait_workers N [SECONDS]: until N workers are registered.
wait_workers() {
  local n=$1 patience=${2:-30} got=0
  local deadline=$(( $(now_us) + patience * 1000000 ))
  while [ "$(now_us)" -lt $deadline ]; do
    got=$(worker_count)
    [ "$got" -ge "$n" ] && return 0
    sleep 0.2
  done
  die "only $got of $n workers registered within ${patience}s (logs in $CL_DIR)"
}

# start_coordinator DIR HEARTBEAT_MS
start_coordinator() {
  CL_DIR=$1 CL_HEARTBEAT=$2
  mkdir -p "$CL_DIR"
  "$BIN_COORDINATOR" --workers 'tcp://127.0.0.1:*' --clients 'tcp://127.0.0.1:*' \
    --events 'tcp://127.0.0.1:*' --heartbeat-ms "$CL_HEARTBEAT" --ready-file "$CL_DIR/ready" \
    --log-level warn >"$CL_DIR/coordinator.log" 2>&1 &
  CL_COORDINATOR_PID=$!
  PIDS+=("$CL_COORDINATOR_PID")
  for _ in $(seq 100); do
    [ -s "$CL_DIR/ready" ] && break
    kill -0 "$CL_COORDINATOR_PID" 2>/dev/null || die "coordinator did not start: $(tail -3 "$CL_DIR/coordinator.log")"
    sleep 0.05
  done
  [ -s "$CL_DIR/ready" ] || die "coordinator wrote no ready file"
  CL_WORKERS=$(sed -n 's/^workers=//p' "$CL_DIR/ready")
  CL_CLIENTS=$(sed -n 's/^clients=//p' "$CL_DIR/ready")
  CL_EVENTS=$(sed -n 's/^events=//p' "$CL_DIR/ready")
  CL_WORKER_PIDS=()
}

# start_worker I: worker wI (1 slot, work dir CL_DIR/work-I, the cluster's heartbeat).
start_worker() {
  local i=$1
  "${WORKER_WRAP[@]}" "$BIN_WORKER" --coordinator "$CL_WORKERS" --slots 1 --name "w$i" \
    --work-dir "$CL_DIR/work-$i" --heartbeat-ms "$CL_HEARTBEAT" --log-level warn \
    >>"$CL_DIR/worker-$i.log" 2>&1 &
  CL_WORKER_PIDS[$i]=$!
  PIDS+=("$!")
}

# start_cluster DIR WORKERS HEARTBEAT_MS
start_cluster() {
  start_coordinator "$1" "$3"
  local i
  for i in $(seq "$2"); do start_worker "$i"; done
  wait_workers "$2"
}

stop_cluster() {
  local pids=()
  local i
  for i in "${!CL_WORKER_PIDS[@]}"; do pids+=("${CL_WORKER_PIDS[$i]}"); done
  [ ${#pids[@]} -gt 0 ] && stop_pids "${pids[@]}"
  [ -n "$CL_COORDINATOR_PID" ] && stop_pids "$CL_COORDINATOR_PID"
  CL_WORKER_PIDS=() CL_COORDINATOR_PID=""
}

# zmr_job LOG ARGS...: `zmr submit ARGS --wait`, timed from before submit to its exit (the job
# COMPLETED: _SUCCESS is written before the coordinator reports it). Sets JOB_ID and JOB_S;
# returns submit's exit code.
JOB_ID="" JOB_S=""
zmr_job() {
  local logfile=$1; shift
  local t0 t1 rc=0
  t0=$(now_us)
  zmrc --timeout-ms 20000 submit "$@" --wait --no-progress >"$logfile" 2>&1 || rc=$?
  t1=$(now_us)
  JOB_S=$(seconds_between "$t0" "$t1")
  JOB_ID=$(head -1 "$logfile")
  return $rc
}

# time_run VAR CMD...: runs CMD (a function or program), appends its wall seconds to array VAR.
time_run() {
  local -n times_ref=$1; shift
  local t0 t1
  t0=$(now_us)
  "$@"
  t1=$(now_us)
  times_ref+=("$(seconds_between "$t0" "$t1")")
}

job_field() {  # job_field JOB PYTHON_EXPR_ON_j
  zmrc --timeout-ms 20000 status "$1" --json |
    /usr/bin/python3 -c "import json, sys; j = json.load(sys.stdin); print($2)"
}

# normalise_parts DIR OUT: every part file of a zmr output, as one bytewise-sorted list.
normalise_parts() { cat "$1"/part-* | sort >"$2"; }

# zmr_repeats NAME DIR KEEP JOB_ARGS...: REPEATS timed jobs `zmr submit JOB_ARGS --output
# DIR/zmr-out-R` on the running cluster, each output removed after its run and the first one
# passed to `KEEP OUTPUT DIR` before. Sets ZMR_TIMES; returns 1 after fail when a job failed.
ZMR_TIMES=()
zmr_repeats() {
  local name=$1 dir=$2 keep=$3
  shift 3
  ZMR_TIMES=()
  local r out
  for r in $(seq "$REPEATS"); do
    out=$dir/zmr-out-$r
    if ! zmr_job "$dir/zmr-$r.log" "$@" --output "$out"; then
      fail "$name: zmr job failed: $(tail -3 "$dir/zmr-$r.log")"
      return 1
    fi
    [ -f "$out/_SUCCESS" ] || fail "$name: no _SUCCESS in $out"
    ZMR_TIMES+=("$JOB_S")
    log "zmr run $r: ${JOB_S}s"
    if [ "$r" -eq 1 ]; then "$keep" "$out" "$dir"; fi
    rm -rf "$out"
  done
}

# same FILE_A FILE_B WHAT: a check that two normalised outputs are equal.
same() {
  if cmp -s "$1" "$2"; then
    log "check: $3 equals zmr's output ($(wc -l <"$2") lines)"
  else
    fail "$3: output differs from zmr's ($1 vs $2: $(cmp "$1" "$2" 2>&1 | head -1))"
  fi
}

want() {
  [ -z "$ONLY" ] && return 0
  case ",$ONLY," in *",$1,"*) return 0 ;; esac
  return 1
}

# ---------------------------------------------------------------------------------------------
# 1. wordcount: zmr's built-in wordcount (2 workers x 1 slot, --maps = files, --reduces 2) against
# a single-threaded C++ reference, mawk, tr|sort|uniq -c and a Dask bag on 2 processes.

peer_wc_ref() { "$TOOLS/wc_ref" "${WC_INPUTS[@]}" >"$1"; }
peer_mawk() {
  mawk '{ for (i = 1; i <= NF; i++) c[$i]++ } END { for (w in c) printf "%s\t%d\n", w, c[w] }' \
    "${WC_INPUTS[@]}" >"$1"
}
peer_pipeline() {
  cat "${WC_INPUTS[@]}" | tr -s ' ' '\n' | sort | uniq -c >"$1"
}

keep_wordcount_output() { normalise_parts "$1" "$2/zmr.txt"; }

bench_wordcount() {
  local bytes files
  if [ $QUICK -eq 1 ]; then bytes=$((16 * MiB)) files=4; else bytes=$((256 * MiB)) files=8; fi
  local data
  data=$(text_data "$bytes" "$files" 100000 1.0 1)
  WC_INPUTS=("$data"/part-*.txt)
  local dir=$RUN_DIR/wordcount name
  name="wordcount $(human_bytes "$bytes")"
  mkdir -p "$dir"
  log "== $name: $files files, Zipf(1.0) over 100,000 words, $REPEATS runs each"

  start_cluster "$dir/cluster" 2 1000
  if ! zmr_repeats "$name" "$dir" keep_wordcount_output --app wordcount --input "$data" \
      --maps "$files" --reduces 2; then
    stop_cluster; return
  fi
  stop_cluster
  local zmr_med r
  zmr_med=$(median "${ZMR_TIMES[@]}")
  local mibps
  mibps=$(div "$((bytes / MiB))" "$zmr_med" "%.1f")
  record "$name" "zmr throughput MiB/s" "$mibps"

  local times
  times=(); for r in $(seq "$REPEATS"); do time_run times peer_wc_ref "$dir/ref.raw"; done
  sort "$dir/ref.raw" >"$dir/ref.txt"; same "$dir/ref.txt" "$dir/zmr.txt" "wc_ref"
  record "$name" "median s" "$zmr_med" "C++ reference (1 core)" "$(median "${times[@]}")"

  times=(); for r in $(seq "$REPEATS"); do time_run times peer_mawk "$dir/mawk.raw"; done
  sort "$dir/mawk.raw" >"$dir/mawk.txt"; same "$dir/mawk.txt" "$dir/zmr.txt" "mawk"
  record "$name" "median s" "$zmr_med" "mawk" "$(median "${times[@]}")"

  times=(); for r in $(seq "$REPEATS"); do time_run times peer_pipeline "$dir/pipe.raw"; done
  awk '{ printf "%s\t%s\n", $2, $1 }' "$dir/pipe.raw" | sort >"$dir/pipe.txt"
  same "$dir/pipe.txt" "$dir/zmr.txt" "tr|sort|uniq -c"
  record "$name" "median s" "$zmr_med" "tr|sort|uniq -c" "$(median "${times[@]}")"

  local json
  if json=$(/usr/bin/python3 "$ROOT/bench/dask_peer.py" wordcount --repeats "$REPEATS" \
      --out "$dir/dask.raw" "${WC_INPUTS[@]}" 2>"$dir/dask.log"); then
    sort "$dir/dask.raw" >"$dir/dask.txt"; same "$dir/dask.txt" "$dir/zmr.txt" "dask"
    local dask_times
    read -r -a dask_times <<<"$(echo "$json" | /usr/bin/python3 -c \
      'import json, sys; print(" ".join("%.3f" % t for t in json.load(sys.stdin)["runs_s"]))')"
    record "$name" "median s" "$zmr_med" "Dask bag, 2 procs" "$(median "${dask_times[@]}")"
  else
    fail "$name: the Dask peer failed: $(tail -3 "$dir/dask.log")"
  fi
  rm -f "$dir"/*.raw
}

# ---------------------------------------------------------------------------------------------
# 2. sort: 100-byte records with 10-character random keys (bench/gen_records.cc), one file. zmr's
# built-in sort app (2 workers x 1 slot, --reduces 2, split points sampled by `zmr submit`), end to
# end from submit to _SUCCESS, against GNU sort -S 128M --parallel=2 on the same file. The check:
# cat part-00000 part-00001 equals GNU sort's output byte for byte. GNU sort orders whole lines and
# zmr stable by key; on these records both are the same order, because after the key each record
# holds its index (32 hex digits, increasing through the file), so equal keys are ordered by input
# position either way.

# The sort's output as it is: part-00000 then part-00001.
keep_sort_output() {
  log "part sizes: $(stat -c %s "$1"/part-* | tr '\n' ' ')"
  cat "$1"/part-00000 "$1"/part-00001 >"$2/zmr.txt"
}

bench_sort() {
  local bytes
  if [ $QUICK -eq 1 ]; then bytes=$((32 * MiB)); else bytes=$((512 * MiB)); fi
  local records=$((bytes / 100))
  local input dir=$RUN_DIR/sort name maps
  input=$(record_data "$records")
  name="sort $(human_bytes "$bytes")"
  mkdir -p "$dir"
  # One map per 32 MiB: a map's records and their index fit the default 64 MiB sort buffer, so
  # maps sort in memory and write their runs once (no spill and merge).
  maps=$(( (bytes + 32 * MiB - 1) / (32 * MiB) ))
  log "== $name: $records records, $maps maps, 2 reduces, $REPEATS runs each"

  start_cluster "$dir/cluster" 2 1000
  if ! zmr_repeats "$name" "$dir" keep_sort_output --app sort --input "$input" --maps "$maps" \
      --reduces 2; then
    stop_cluster; return
  fi
  stop_cluster
  local zmr_med r
  zmr_med=$(median "${ZMR_TIMES[@]}")
  record "$name" "zmr throughput MiB/s" "$(div "$((bytes / MiB))" "$zmr_med" "%.1f")"

  local times=()
  for r in $(seq "$REPEATS"); do
    time_run times sort -S 128M --parallel=2 -T "$dir" -o "$dir/sorted.txt" "$input"
  done
  same "$dir/sorted.txt" "$dir/zmr.txt" "GNU sort"
  rm -f "$dir/sorted.txt" "$dir/zmr.txt"
  record "$name" "median s" "$zmr_med" "GNU sort -S 128M --parallel=2" "$(median "${times[@]}")"
}

# ---------------------------------------------------------------------------------------------
# 3. task overhead: jobs of N map tasks (--maps N over a tiny input of 2N lines) and 1 reduce;
# tasks/s = (N + 1) / end-to-end seconds. Peer: N no-op Dask tasks on a 2-worker LocalCluster.

bench_overhead() {
  local counts reps_big
  if [ $QUICK -eq 1 ]; then counts=(100 1000) reps_big=1; else counts=(100 1000 10000) reps_big=1; fi
  local dir=$RUN_DIR/overhead
  mkdir -p "$dir"
  log "== task overhead: ${counts[*]} map tasks + 1 reduce"
  start_cluster "$dir/cluster" 2 1000
  local n r reps
  declare -A zmr_rate
  for n in "${counts[@]}"; do
    awk -v n=$((2 * n)) 'BEGIN { for (i = 0; i < n; i++) printf "line %06d alpha beta\n", i }' \
      >"$dir/input-$n.txt"
    "$TOOLS/wc_ref" "$dir/input-$n.txt" >"$dir/expected-$n.txt"
    reps=$REPEATS
    [ "$n" -ge 1000 ] && reps=$reps_big
    local times=()
    for r in $(seq "$reps"); do
      if ! zmr_job "$dir/zmr-$n-$r.log" --app wordcount --input "$dir/input-$n.txt" \
          --output "$dir/out-$n-$r" --maps "$n" --reduces 1; then
        fail "overhead $n: zmr job failed: $(tail -3 "$dir/zmr-$n-$r.log")"; continue
      fi
      local maps
      maps=$(job_field "$JOB_ID" 'j["maps"]["done"]')
      [ "$maps" = "$n" ] || fail "overhead $n: $maps maps done, wanted $n"
      normalise_parts "$dir/out-$n-$r" "$dir/got.txt"
      same "$dir/expected-$n.txt" "$dir/got.txt" "overhead $n (wc_ref of the input)"
      rm -rf "$dir/out-$n-$r"
      times+=("$JOB_S")
      log "zmr $n maps run $r: ${JOB_S}s"
    done
    [ ${#times[@]} -gt 0 ] && zmr_rate[$n]=$(div "$((n + 1))" "$(median "${times[@]}")" "%.1f")
  done
  stop_cluster

  local json
  if json=$(/usr/bin/python3 "$ROOT/bench/dask_peer.py" noop --repeats "$REPEATS" "${counts[@]}" \
      2>"$dir/dask.log"); then
    for n in "${counts[@]}"; do
      local dask_times
      read -r -a dask_times <<<"$(echo "$json" | /usr/bin/python3 -c \
        "import json, sys; print(' '.join('%.4f' % t for t in json.load(sys.stdin)['runs']['$n']))")"
      record "task overhead $n maps" "tasks/s" "${zmr_rate[$n]:-failed}" "Dask no-op tasks" \
        "$(div "$n" "$(median "${dask_times[@]}")" "%.1f")"
    done
  else
    fail "overhead: the Dask peer failed: $(tail -3 "$dir/dask.log")"
    for n in "${counts[@]}"; do record "task overhead $n maps" "tasks/s" "${zmr_rate[$n]:-failed}"; done
  fi
}

# ---------------------------------------------------------------------------------------------
# 4. small-job latency: `zmr submit --wait` of a 1-map 1-reduce wordcount of one line.

bench_latency() {
  local runs
  if [ $QUICK -eq 1 ]; then runs=10; else runs=50; fi
  local dir=$RUN_DIR/latency
  mkdir -p "$dir"
  log "== small-job latency: $runs jobs of 1 map + 1 reduce"
  echo "hello small world" >"$dir/input.txt"
  printf 'hello\t1\nsmall\t1\nworld\t1\n' >"$dir/expected.txt"
  start_cluster "$dir/cluster" 2 1000
  local ms=() r bad=0
  for r in $(seq "$runs"); do
    if ! zmr_job "$dir/zmr.log" --app wordcount --input "$dir/input.txt" --output "$dir/out-$r" \
        --maps 1 --reduces 1; then
      fail "latency: job $r failed: $(tail -3 "$dir/zmr.log")"; continue
    fi
    cmp -s "$dir/out-$r/part-00000" "$dir/expected.txt" || bad=$((bad + 1))
    rm -rf "$dir/out-$r"
    ms+=("$(awk -v s="$JOB_S" 'BEGIN { printf "%.1f", s * 1000 }')")
  done
  stop_cluster
  [ $bad -eq 0 ] || fail "latency: $bad of $runs outputs differ from the expected counts"
  [ ${#ms[@]} -gt 0 ] || return 0
  record "small-job latency ($runs jobs)" "p50 ms" "$(percentile 50 "${ms[@]}")"
  record "small-job latency ($runs jobs)" "p99 ms" "$(percentile 99 "${ms[@]}")"
}

# ---------------------------------------------------------------------------------------------
# 5. failure recovery: a 1-map streaming job whose mapper sleeps; once its attempt 1 runs, SIGKILL
# that worker and read from the event stream (zmr watch --json) when worker_lost and the task's
# attempt 2 were published. Recovery = attempt 2's task_assigned ts_ms - the kill time (the same
# machine's clock). Then cancel the job and restart the worker.

# event_ts EVENTS FROM_LINE TYPE MATCH1 MATCH2: ts_ms of the first event of TYPE at or after line
# FROM_LINE of EVENTS whose line contains both (fixed) strings.
event_ts() {
  tail -n +"$2" "$1" | grep -F "\"type\":\"$3\"" | grep -F -- "$4" | grep -F -- "$5" | head -1 |
    sed -n 's/.*"ts_ms":\([0-9]*\).*/\1/p'
}

# wait_event VAR SECONDS EVENTS FROM_LINE TYPE MATCH1 MATCH2: polls event_ts until it finds one.
wait_event() {
  local -n out_ref=$1
  local deadline=$(( $(now_us) + $2 * 1000000 ))
  shift 2
  out_ref=""
  while [ "$(now_us)" -lt $deadline ]; do
    out_ref=$(event_ts "$@")
    [ -n "$out_ref" ] && return 0
    sleep 0.01
  done
  return 1
}

bench_recovery() {
  local samples
  if [ $QUICK -eq 1 ]; then samples=1; else samples=$REPEATS; fi
  local hb
  for hb in 1000 100; do
    local dir=$RUN_DIR/recovery-$hb
    mkdir -p "$dir"
    log "== failure recovery at --heartbeat-ms $hb (liveness 3): $samples kills"
    echo "one line" >"$dir/input.txt"
    start_cluster "$dir/cluster" 2 "$hb"
    # The binary itself, not the zmrc function: a backgrounded function is a subshell, and
    # stopping that would leave the watch running.
    "$BIN_ZMR" --coordinator "$CL_CLIENTS" watch --json >"$dir/events.jsonl" 2>"$dir/watch.err" &
    local watch_pid=$!
    PIDS+=("$watch_pid")
    sleep 1  # the subscription is live after the coordinator's next heartbeat
    local recover=() detect=() s
    for s in $(seq "$samples"); do
      local job
      job=$(zmrc submit --input "$dir/input.txt" --output "$dir/out-$s" --mapper 'sleep 600' \
        --reducer NONE --no-speculation 2>>"$dir/submit.err") || { fail "recovery: submit failed"; break; }
      local t_assigned worker events=$dir/events.jsonl
      if ! wait_event t_assigned 30 "$events" 1 task_assigned "\"job_id\":\"$job\"" '"attempt":1,'; then
        fail "recovery: attempt 1 of $job was never assigned"; break
      fi
      worker=$(grep -F "\"job_id\":\"$job\"" "$events" | grep -F '"type":"task_assigned"' |
        head -1 | sed -n 's/.*"worker":"\(w[0-9]*\)".*/\1/p')
      local i=${worker#w}
      sleep 0.5  # let the attempt's zmr-task start
      local victims pid=${CL_WORKER_PIDS[$i]}
      victims=$(descendants "$pid")
      local t_kill from_line
      from_line=$(( $(wc -l <"$events") + 1 ))
      t_kill=$(( $(now_us) / 1000 ))
      kill -KILL "$pid"
      wait "$pid" 2>/dev/null || true
      forget_pid "$pid"
      # The attempt's zmr-task and mapper die with it (parent-death signals); make sure.
      [ -n "$victims" ] && kill -KILL $victims 2>/dev/null || true
      local t_lost t_new
      wait_event t_lost 60 "$events" "$from_line" worker_lost "\"worker\":\"$worker\"" '' || true
      if ! wait_event t_new 60 "$events" "$from_line" task_assigned "\"job_id\":\"$job\"" \
          '"attempt":2,'; then
        fail "recovery: no attempt 2 of $job within 60 s of killing $worker"
      else
        recover+=("$((t_new - t_kill))")
        [ -n "$t_lost" ] && detect+=("$((t_lost - t_kill))")
        log "kill $worker -> worker_lost +$((t_lost - t_kill)) ms, attempt 2 +$((t_new - t_kill)) ms"
      fi
      zmrc cancel "$job" >/dev/null 2>&1 || true
      zmrc wait "$job" --no-progress >/dev/null 2>&1 || true
      start_worker "$i"
      wait_workers 2
    done
    stop_pids "$watch_pid"
    stop_cluster
    if [ ${#recover[@]} -gt 0 ]; then
      record "failure recovery, heartbeat ${hb} ms" "kill -> worker_lost, median ms" \
        "$(printf '%.0f' "$(median "${detect[@]:-0}")")"
      record "failure recovery, heartbeat ${hb} ms" "kill -> new attempt, median ms" \
        "$(printf '%.0f' "$(median "${recover[@]}")")"
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# 6. coordinator scale: the real coordinator (default heartbeat) against zmr-sim-workers (1,000
# simulated workers x 2 slots, 20 ms tasks). Coordinator CPU% from /proc/<pid>/stat over an idle
# window and over one job of many maps. The simulator runs on the same two cores. Heartbeat round
# trip: the simulator's probe (--probe-ms) times the coordinator's answer to a heartbeat, over the
# whole run (idle and job).

cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

bench_scale() {
  [ -x "$BIN_SIM" ] || { fail "scale: $BIN_SIM is missing (target zmr-sim-workers)"; return; }
  local workers=1000 tasks idle_s
  if [ $QUICK -eq 1 ]; then tasks=10000 idle_s=5; else tasks=100000 idle_s=20; fi
  local dir=$RUN_DIR/scale hz
  hz=$(getconf CLK_TCK)
  mkdir -p "$dir"
  log "== coordinator scale: $workers simulated workers, idle ${idle_s}s, a job of $tasks maps"
  start_coordinator "$dir/cluster" 1000
  "$BIN_SIM" --coordinator "$CL_WORKERS" --events "$CL_EVENTS" --workers "$workers" --slots 2 \
    --task-ms 20 --name-prefix sim --probe-ms 100 --report "$dir/sim.json" --log-level warn \
    >"$dir/sim.log" 2>&1 &
  local sim_pid=$!
  PIDS+=("$sim_pid")
  wait_workers "$workers" 120
  sleep 2  # past the registration burst
  local c0 c1
  c0=$(cpu_ticks "$CL_COORDINATOR_PID")
  sleep "$idle_s"
  c1=$(cpu_ticks "$CL_COORDINATOR_PID")
  local idle_pct
  idle_pct=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v s="$idle_s" 'BEGIN { printf "%.1f", 100 * t / hz / s }')

  awk -v n=$((2 * tasks)) 'BEGIN { for (i = 0; i < n; i++) printf "line %07d a b\n", i }' \
    >"$dir/input.txt"
  c0=$(cpu_ticks "$CL_COORDINATOR_PID")
  local ok=1
  zmr_job "$dir/zmr.log" --app wordcount --input "$dir/input.txt" --output "$dir/out" \
    --maps "$tasks" --reduces 1 || { ok=0; fail "scale: the $tasks-map job failed: $(tail -3 "$dir/zmr.log")"; }
  c1=$(cpu_ticks "$CL_COORDINATOR_PID")
  local job_pct
  job_pct=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v s="$JOB_S" 'BEGIN { printf "%.1f", 100 * t / hz / s }')
  stop_pids "$sim_pid"
  stop_cluster
  local name="coordinator, $workers sim workers"
  record "$name" "idle CPU % (1 core = 100)" "$idle_pct"
  if [ $ok -eq 1 ]; then
    record "$name" "CPU % during $tasks-map job" "$job_pct"
    record "$name" "$tasks-map job tasks/s" "$(div "$((tasks + 1))" "$JOB_S" "%.0f")"
  fi
  if [ -s "$dir/sim.json" ]; then
    local fields
    fields=$(/usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))
print(r["heartbeat_gap_p50_ms"], r["heartbeat_gap_p99_ms"], r["worker_lost_events"], r["reregisters"], r["cpu_seconds"],
      "%.1f/%.1f" % (r["probe_rtt_p50_us"] / 1000, r["probe_rtt_p99_us"] / 1000))' "$dir/sim.json")
    local p50 p99 lost rereg sim_cpu rtt
    read -r p50 p99 lost rereg sim_cpu rtt <<<"$fields"
    record "$name" "heartbeat gap p50/p99 ms" "$p50/$p99"
    record "$name" "heartbeat round trip p50/p99 ms" "$rtt"
    record "$name" "workers lost / re-registered" "$lost/$rereg"
    [ "$lost" = 0 ] && [ "$rereg" = 0 ] ||
      log "warning: $lost simulated workers were lost and $rereg re-registered"
  else
    fail "scale: zmr-sim-workers wrote no report"
  fi
}

# ---------------------------------------------------------------------------------------------
# 7. memory: worker peak RSS for wordcount with high-cardinality keys (uniform over 50 million
# words). Figures: the largest peak_rss_kb of the job's attempts (zmr-task processes, the job's
# counters) and the zmr-worker processes' own VmHWM (reset before each job). The check: the
# counts add up to the generator's word count and each part file has unique, ordered keys.

vm_hwm_kb() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

bench_memory() {
  local sizes
  if [ $QUICK -eq 1 ]; then sizes=(16 32 64); else sizes=(512 1024 2048); fi
  local dir=$RUN_DIR/memory
  mkdir -p "$dir"
  log "== memory: high-cardinality wordcount at ${sizes[*]} MiB"
  start_cluster "$dir/cluster" 2 1000
  local mib
  for mib in "${sizes[@]}"; do
    local bytes=$((mib * MiB)) files=$(( mib >= 256 ? mib / 128 : 2 ))
    local maps=$(( mib >= 128 ? mib / 64 : 2 ))
    local data
    data=$(text_data "$bytes" "$files" 50000000 0 7)
    local i
    for i in "${!CL_WORKER_PIDS[@]}"; do echo 5 >"/proc/${CL_WORKER_PIDS[$i]}/clear_refs" || true; done
    local out=$dir/out-$mib name
    name="memory, high-cardinality wordcount $(human_bytes "$bytes")"
    if ! zmr_job "$dir/zmr-$mib.log" --app wordcount --input "$data" --output "$out" \
        --maps "$maps" --reduces 2; then
      fail "$name: zmr job failed: $(tail -3 "$dir/zmr-$mib.log")"; continue
    fi
    local task_kb worker_kb=0 kb
    task_kb=$(job_field "$JOB_ID" 'j["counters"].get("peak_rss_kb", 0)')
    for i in "${!CL_WORKER_PIDS[@]}"; do
      kb=$(vm_hwm_kb "${CL_WORKER_PIDS[$i]}")
      [ "${kb:-0}" -gt $worker_kb ] && worker_kb=$kb
    done
    local sum keys
    read -r sum keys <<<"$(cat "$out"/part-* | awk -F'\t' '{ s += $2 } END { printf "%d %d", s, NR }')"
    [ "$sum" = "$(manifest_words "$data")" ] ||
      fail "$name: counts add up to $sum, the generator wrote $(manifest_words "$data") words"
    local part
    for part in "$out"/part-*; do
      cut -f1 "$part" | sort -c -u || fail "$name: $part keys not unique and ordered"
    done
    log "check: $name: $keys distinct words, counts add up to $sum"
    rm -rf "$out"
    record "$name" "zmr-task peak RSS MiB" "$(div "$task_kb" 1024 "%.0f")"
    record "$name" "zmr-worker peak RSS MiB" "$(div "$worker_kb" 1024 "%.0f")"
    record "$name" "wall s ($keys keys)" "$JOB_S"
  done
  stop_cluster
}

# ---------------------------------------------------------------------------------------------
# --profile: one wordcount with both workers (and so their zmr-task children) under perf record.

# profile_job: one wordcount (or, with --only sort, one sort) with both workers under perf record.
profile_job() {
  local bytes files data job_args what
  if [ "$ONLY" = sort ]; then
    if [ $QUICK -eq 1 ]; then bytes=$((32 * MiB)); else bytes=$((512 * MiB)); fi
    data=$(record_data $((bytes / 100)))
    job_args=(--app sort --input "$data" --maps $(( (bytes + 32 * MiB - 1) / (32 * MiB) )))
    what="sort"
  else
    if [ $QUICK -eq 1 ]; then bytes=$((16 * MiB)) files=4; else bytes=$((256 * MiB)) files=8; fi
    data=$(text_data "$bytes" "$files" 100000 1.0 1)
    job_args=(--app wordcount --input "$data" --maps "$files")
    what="wordcount"
  fi
  local dir=$RUN_DIR/profile
  mkdir -p "$dir"
  command -v perf >/dev/null || die "perf is missing (apt-get install linux-perf)"
  start_coordinator "$dir/cluster" 1000
  local i
  for i in 1 2; do
    WORKER_WRAP=(perf record -F 499 -g -o "$dir/perf-w$i.data" --)
    start_worker "$i"
  done
  WORKER_WRAP=()
  wait_workers 2
  log "== profile: $what $(human_bytes "$bytes") with the workers under perf record"
  zmr_job "$dir/zmr.log" "${job_args[@]}" --output "$dir/out" --reduces 2 ||
    die "the profiled job failed: $(tail -3 "$dir/zmr.log")"
  log "profiled job: ${JOB_S}s"
  zmrc tasks "$JOB_ID" >&2 || true
  # Stop the workers (the children of perf), then perf writes its data and exits.
  local perf_pid worker_pid
  for i in 1 2; do
    perf_pid=${CL_WORKER_PIDS[$i]}
    worker_pid=$(pgrep -P "$perf_pid" | head -1 || true)
    [ -n "$worker_pid" ] && kill -TERM "$worker_pid" 2>/dev/null || true
  done
  stop_cluster
  for i in 1 2; do
    echo "=== perf report, worker w$i and its zmr-task children (self time) ==="
    perf report -i "$dir/perf-w$i.data" --stdio --no-children -g none --sort comm,dso,sym \
      --percent-limit 0.7 2>/dev/null | grep -v '^$' | grep -E '^ +[0-9]' | head -40
  done
  if [ $KEEP -eq 1 ]; then log "perf data: $dir/perf-w1.data $dir/perf-w2.data"; fi
}

# ---------------------------------------------------------------------------------------------

main() {
  install_packages
  build_zmr
  build_tools
  RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/zmr-bench.XXXXXX")
  : >"$RUN_DIR/results.tsv"
  local t0
  t0=$(now_us)
  if [ $PROFILE -eq 1 ]; then
    profile_job
    return 0
  fi
  local name
  for name in "${BENCH_NAMES[@]}"; do
    if want "$name"; then "bench_$name"; fi
  done
  local took
  took=$(seconds_between "$t0" "$(now_us)")
  echo
  echo "zmr benchmarks ($([ $QUICK -eq 1 ] && echo quick || echo full), $REPEATS repeats," \
    "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ), ${took}s)"
  echo "zmr/peer: the ratio of the two figures as shown (times: > 1 = zmr slower; rates: > 1 = zmr faster)"
  echo
  print_table
  if [ $FAILURES -gt 0 ]; then
    echo
    echo "$FAILURES CHECK(S) FAILED:"
    sed 's/^/  /' "$RUN_DIR/failures.txt"
    return 1
  fi
  echo
  echo "every output check passed"
}

main
