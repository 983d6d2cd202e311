#!/usr/bin/env bash
# tools/gpu_check.sh OUTDIR [options]: the GPU check in one go (python -m diffsep.bench gpu --out OUTDIR).
#
# On a lent GPU machine, from anywhere in the checkout:   tools/gpu_check.sh "$OUT"
# The same plan on CPU with tiny sizes (what CI tests):    tools/gpu_check.sh out/gpu --dry-run
# Options: --device cuda:N, --budget SECONDS (default 255), --only/--skip NAME,GLOB, --list.
# Writes OUTDIR/gpu_report.md, gpu_report.json, gpu_check.log and demo.png (4 files). Packages the
# machine lacks (soundfile, omegaconf, pytest ...) can be put on PYTHONPATH; steps that need a
# missing one are reported as skipped. Exit status 0 when every step passed.
set -u
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: tools/gpu_check.sh OUTDIR [--dry-run] [--device cuda:N] [--budget S] [--only NAMES] [--skip NAMES]" >&2
    exit 2
fi
out=$1
shift
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
cd "$(dirname "$0")/.." || exit 2
py=${PYTHON:-$(command -v python || command -v python3)}
PYTHONUNBUFFERED=1 exec "$py" -m diffsep.bench gpu --out "$out" "$@"
