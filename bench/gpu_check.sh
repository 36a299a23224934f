#!/bin/sh
# The GPU check (see bench/gpu_check.py); exits 2 with one line when there is no CUDA GPU.
cd "$(dirname "$0")/.." && exec "${PYTHON:-python}" -m bench --gpu-check "$@"
