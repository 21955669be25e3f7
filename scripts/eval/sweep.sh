#!/usr/bin/env bash
# Experiment "sweep": vpc-dirtier at N pages/s × hot fraction h under every engine (see packages/eval/README.md). Options: --quick (default) | --full, --out DIR, --resume DIR.
exec "$(dirname "$0")/eval.sh" sweep "$@"
