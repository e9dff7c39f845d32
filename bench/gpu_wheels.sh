#!/usr/bin/env bash
# Fetch the optional competitors of bench/gpu_check.sh as wheels into .whl/ (run where pip can
# reach PyPI; the GPU machine cannot). .whl/ is git-ignored; carry it to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> "$(git rev-parse --git-common-dir)/info/exclude"
for pkg in cut-cross-entropy liger-kernel; do
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$pkg" || echo "no wheel for $pkg: its rows will say not installed"
done
