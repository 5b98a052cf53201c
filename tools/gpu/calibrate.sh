#!/bin/bash
# On the lent GPU machine (no Docker, no network; ../shared/gpu-run/README.md): install vLLM 0.24.0
# from the wheel parts sent before into /tmp/site, kvcached when asked, then start rendered stacks
# with tools/gpu/run_stack.py. The stacks (JSON) are made beforehand on the CPU machine:
#
#   python tools/gpu/stack_commands.py tools/gpu/calibration/catalog-a.yaml --gpus 1x140.4@9.0 \
#       > .gpu/stacks/exact-a.json
#
#   bash tools/gpu/calibrate.sh install [kvcached]
#   bash tools/gpu/calibrate.sh run LABEL STACK [run_stack.py options]
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site VLLM_USE_FLASHINFER_SAMPLER=0 VLLM_NO_USAGE_STATS=1 \
    HF_HUB_OFFLINE=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
case "$1" in
install)
    if [ ! -f /tmp/site/.done ]; then
        [ "$(ls /tmp/parts 2>/dev/null | wc -l)" -ge 7 ] || { echo "the wheel parts are missing"; exit 2; }
        t=$(date +%s)
        cat /tmp/parts/part-* | tar xf - -C /tmp
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
            /tmp/wheels/*.whl 2>&1 | tail -3
        touch /tmp/site/.done
        echo "vLLM installed in $(( $(date +%s) - t ))s"
    fi
    if [ "${2:-}" = kvcached ] && ! python3 -c "import kvcached" 2>/dev/null; then
        t=$(date +%s)
        # Into the interpreter's own site-packages: kvcached's .pth hook, which patches vLLM at
        # import, is not read from a --target folder on PYTHONPATH.
        pip() { python3 -m pip install -q --no-index --no-deps "$@" 2>&1 \
            || python3 -m pip install -q --break-system-packages --no-index --no-deps "$@"; }
        PYTHONPATH= pip .gpu/kvc/*.whl
        PYTHONPATH= pip --no-build-isolation .gpu/kvc/kvcached-*.tar.gz | tail -3
        python3 -c "import kvcached, sys; print('kvcached', kvcached.__file__)"
        echo "kvcached installed in $(( $(date +%s) - t ))s"
    fi
    python3 -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)" \
        2>&1 | tail -1
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader ;;
run)
    label=$2; stack=$3; shift 3
    python3 tools/gpu/run_stack.py "$stack" --label "$label" --out "$OUT" "$@" \
        > "$OUT/$label.out" 2>&1
    grep -E "started|healthy|sized|EXITED" "$OUT/$label.out"
    python3 - "$OUT/$label.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['label']}: all ready after {r['all_ready_s']} s, GPU {r['gpu_used_mib']} MiB in use")
for name, s in r["servers"].items():
    plan = s["plan"]
    footprint = (plan["footprint_bytes"] or 0) / 2**20
    print(f"  {name}: ready {s['ready_after_s']} s, process {s['process_mib']} MiB, plan "
          f"{footprint:.0f} MiB, KV tokens {s['logged'].get('kv_tokens')} (plan "
          f"{plan['kv_tokens']}), {s.get('burst', '')} {s['failed'] or ''}")
EOF
    ;;
esac
