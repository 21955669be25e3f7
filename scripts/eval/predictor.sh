#!/usr/bin/env bash
# Experiment "predictor" of issue 11 (see packages/eval/README.md). Options: --quick (default) | --full, --out DIR, --resume DIR.
exec "$(dirname "$0")/eval.sh" predictor "$@"
