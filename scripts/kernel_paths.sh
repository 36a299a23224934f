#!/usr/bin/env bash
# Run pytest under every CPU kernel path the test tolerances must hold on, and report the worst
# measured disagreement with the stored references per comparison (the float32 noise floor).
#
#   bash scripts/kernel_paths.sh                 # the whole suite under each path
#   bash scripts/kernel_paths.sh tests/test_models.py tests/test_f0.py
#
# Each path runs the suite once; the script exits non-zero if any path was red (and names them).  The table at the end
# comes from tests/reference_compare.py, which appends every comparison to $SVC_TEST_METRICS.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${KERNEL_PATHS_OUT:-$(mktemp -d)}
mkdir -p "$OUT"
failed=()
PATHS=(
    "native 2 threads|"
    "native 1 thread|OMP_NUM_THREADS=1"
    "ATEN default|ATEN_CPU_CAPABILITY=default"
    "ATEN avx2|ATEN_CPU_CAPABILITY=avx2"
    "ATEN avx512|ATEN_CPU_CAPABILITY=avx512"
    "oneDNN AVX2|ONEDNN_MAX_CPU_ISA=AVX2"
    "MKL AVX2|MKL_ENABLE_INSTRUCTIONS=AVX2"
    "all AVX2, 1 thread|ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 OMP_NUM_THREADS=1"
)
for entry in "${PATHS[@]}"; do
    name=${entry%%|*}
    settings=${entry#*|}
    metrics="$OUT/$(echo "$name" | tr -c 'A-Za-z0-9' '_').jsonl"
    rm -f "$metrics"
    echo "=== $name ${settings:+($settings)}"
    if ! env $settings SVC_TEST_METRICS="$metrics" "$PY" -m pytest -q -p no:cacheprovider "$@" | tail -n 5; then
        echo "FAILED under: $name" >&2
        failed+=("$name")
    fi
done
"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

worst: dict[tuple[str, str], dict[str, float]] = {}
for path in sorted(Path(sys.argv[1]).glob("*.jsonl")):
    for line in path.read_text().splitlines():
        row = json.loads(line)
        key = (row.pop("test"), row.pop("what"))
        best = worst.setdefault(key, {})
        for name, value in row.items():
            keep_min = name == "snr_db"
            if name not in best or (value < best[name] if keep_min else value > best[name]):
                best[name] = value
print(f"{'comparison':70s} worst over all paths")
for (test, what), m in sorted(worst.items()):
    shown = ", ".join(f"{k} {v:.3g}" for k, v in m.items())
    print(f"{(test.split('::')[-1] + ' ' + what)[:70]:70s} {shown}")
EOF
if [ ${#failed[@]} -gt 0 ]; then
    printf 'red under: %s\n' "${failed[@]}" >&2
    exit 1
fi
