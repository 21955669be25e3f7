#!/usr/bin/env bash
# Runs evaluation experiments with the built `vpc` (npm run build; make images first).
#   scripts/eval/eval.sh NAME... [--quick|--full] [--out DIR] [--resume DIR]
# then: node packages/cli/dist/bin.js report DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
if [[ ! -f packages/cli/dist/bin.js ]]; then
  echo "eval.sh: packages/cli/dist/bin.js missing: run npm run build first" >&2
  exit 2
fi
exec node packages/cli/dist/bin.js eval "$@"
