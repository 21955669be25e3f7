#!/usr/bin/env bash
# Experiment "npb": NPB classes W (quick) / A (full), guests sized to the kernel, 1 and 4 VMs (see packages/eval/README.md). Options: --quick (default) | --full, --out DIR, --resume DIR.
exec "$(dirname "$0")/eval.sh" npb "$@"
