#!/usr/bin/env bash
# Checks the layering of ARCHITECTURE.md's code map: each folder includes only the layers below it,
# worker/ reaches the runner only through runner/protocol.h, and common/ and apps/ use no ZeroMQ. Prints every include that breaks
# a rule and exits 1 if there is one. Run from anywhere; ctest runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
# check FOLDER ALLOWED_REGEX: every project include in FOLDER must match ALLOWED_REGEX.
check() {
  local folder=$1 allowed=$2 line
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    echo "layering: $line (allowed in $folder/: $allowed)"
    status=1
  done < <(grep -rnE '^#include ["<](common|apps|runner|worker|coordinator|client|include|zmr|tests)/' \
             --include='*.h' --include='*.cc' "$folder" |
           grep -vE "#include [\"<]($allowed)" || true)
}

check include 'zmr/'
check common 'common/|include/zmr/'
check apps 'apps/|common/|include/zmr/|zmr/'
check runner 'runner/|apps/|common/|include/zmr/'
check worker 'worker/|common/|runner/protocol\.h'
check coordinator 'coordinator/|common/|apps/registry\.h'
check client 'client/|common/|apps/registry\.h'
# zmr_common and zmr_apps do not link ZeroMQ: only the programs that own sockets do.
while IFS= read -r line; do
  echo "layering: $line (common/ and apps/ use no ZeroMQ)"
  status=1
done < <(grep -rnE '^#include [<"](zmq|zmq\.hpp|zmq_addon\.hpp|zmq\.h)[>"]' --include='*.h' --include='*.cc' common apps || true)
exit $status
