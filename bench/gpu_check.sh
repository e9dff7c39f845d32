#!/usr/bin/env bash
# The GPU check (issue 10, item 8): one script, under 8 minutes on one H200, figures as JSON.
#
#   bench/gpu_check.sh                 # writes ${OUT:-.}/gpu_check.json
#   bench/gpu_check.sh --dry-run       # the same script on a CPU, tiny shapes (checks the plumbing)
#
# Needs only python3 with torch (+ triton) and the project's pure-Python dependencies, as on
# the device image; installs nothing from the network. Optional competitors travel as wheels:
# put cut_cross_entropy / liger_kernel wheels in .whl/ (see bench/gpu_wheels.sh) and they are
# installed into /tmp/site first; without them those rows say "not installed".
set -uo pipefail
cd "$(dirname "$0")/.."
out_dir="${OUT:-.}"
mkdir -p "$out_dir"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# 480 s hard stop: each section has its own limit inside, this only guards the whole
timeout 480 python3 bench/gpu_check.py --out "$out_dir/gpu_check.json" "$@"
rc=$?
cat "$out_dir/gpu_check.json" 2>/dev/null | head -c 20000
exit $rc
