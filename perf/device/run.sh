#!/usr/bin/env bash
# The GPU check on the device machine, from the repository root, with `.device` carried
# (made by perf/device/prepare.py): install the carried wheels, then perf/device/check.py.
# Extra arguments go to check.py (e.g. --skip metallicity, --epochs 30).
set -uo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl \
    || { echo "installing the carried wheels failed"; exit 3; }
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HARNESS_CACHE_DIR=/tmp/harness-cache OMP_WAIT_POLICY=PASSIVE
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 perf/device/check.py --device cuda --data .device/data/mp_metallicity_36k.csv.gz "$@" 2>&1 \
    | tee "${OUT:-/tmp}/check.log"
