#!/usr/bin/env bash
# Checks the layering of ARCHITECTURE.md's code map: each folder includes only the layers below it,
# and worker/ reaches the runner only through runner/protocol.h. Prints every include that breaks
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
exit $status
