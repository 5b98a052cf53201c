#!/bin/bash
# Used on the lent H100 (2026-11-25) following ../shared/gpu-run/README.md: the wheels sent in parts,
# this folder holding it with the four *-config.json of ../shared/gpu-run and a tokenizer.json.
# Memory figures of vLLM 0.24 on one H100, dummy weights (--load-format dummy: the same bytes as
# real ones, no files), DEBUG logs for vLLM's own profile breakdown.
#   measure.sh alone   - each shape alone, eager, then again with --max-num-seqs 256; killed
#                        once its KV cache is sized
#   measure.sh chain F1 F2 F3 F4 F5 - the seed's chain with these fractions, CUDA graphs on,
#                        each server waiting for the previous one's /health
H=$(cd "$(dirname "$0")" && pwd)
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site VLLM_USE_FLASHINFER_SAMPLER=0 VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1 VLLM_LOGGING_LEVEL=DEBUG
if [ ! -f /tmp/site/.done ]; then
  t=$(date +%s); cat /tmp/parts/part-* | tar xf - -C /tmp
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/wheels/*.whl 2>&1 | tail -3
  touch /tmp/site/.done; echo "install $(( $(date +%s) - t ))s"
fi
for m in llama3 gemma phi3 stablelm; do mkdir -p /tmp/m/$m; cp $H/$m-config.json /tmp/m/$m/config.json; cp $H/tokenizer*.json /tmp/m/$m/; done
PIDS=""
serve() { tag=$1; model=$2; port=$3; until=$4; shift 4
  t=$(date +%s)
  setsid python3 -m vllm.entrypoints.openai.api_server --model /tmp/m/$model --served-model-name $tag \
    --host 127.0.0.1 --port $port --load-format dummy --trust-remote-code "$@" > $OUT/$tag.log 2>&1 &
  pid=$!; PIDS="$PIDS $pid"
  for i in $(seq 1 300); do
    if [ $until = kv ] && grep -q "Maximum concurrency\|GPU KV cache size" $OUT/$tag.log; then sleep 1; echo "$tag: KV sized after $(( $(date +%s) - t ))s"; kill -- -$pid 2>/dev/null; sleep 4; break; fi
    if [ $until = health ] && curl -sf http://127.0.0.1:$port/health >/dev/null; then echo "$tag healthy after $(( $(date +%s) - t ))s"; break; fi
    kill -0 $pid 2>/dev/null || { echo "$tag EXITED after $(( $(date +%s) - t ))s"; grep -E "Error|error" $OUT/$tag.log | grep -v DEBUG | tail -2 | cut -c1-300; break; }
    sleep 1; done
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader | sed "s/^/  smi after $tag: /"
  nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader | sed "s/^/  gpu after $tag: /"
  grep -hE "Model loading took|Available KV cache memory|GPU KV cache size|Memory profiling takes|Estimated CUDA graph memory:|Graph capturing finished|Free memory on device|Initial free memory" $OUT/$tag.log | cut -c1-420 | sed 's/^/  /'; }
case "$1" in
alone)
  serve llama3 llama3 8001 kv --gpu-memory-utilization 0.25 --dtype bfloat16 --enforce-eager
  serve gemma gemma 8002 kv --gpu-memory-utilization 0.27 --kv-cache-dtype fp8 --enforce-eager
  serve phi3 phi3 8003 kv --gpu-memory-utilization 0.17 --kv-cache-dtype fp8 --max-model-len 18000 --enforce-eager
  serve stablelm stablelm 8004 kv --gpu-memory-utilization 0.07 --dtype float16 --kv-cache-dtype fp8 --enforce-eager
  serve llama3-s256 llama3 8001 kv --gpu-memory-utilization 0.25 --dtype bfloat16 --enforce-eager --max-num-seqs 256
  serve gemma-s256 gemma 8002 kv --gpu-memory-utilization 0.27 --kv-cache-dtype fp8 --enforce-eager --max-num-seqs 256
  serve phi3-s256 phi3 8003 kv --gpu-memory-utilization 0.17 --kv-cache-dtype fp8 --max-model-len 18000 --enforce-eager --max-num-seqs 256
  serve stablelm-s256 stablelm 8004 kv --gpu-memory-utilization 0.07 --dtype float16 --kv-cache-dtype fp8 --enforce-eager --max-num-seqs 256
  serve gemma-graphs gemma 8002 kv --gpu-memory-utilization 0.30 --kv-cache-dtype fp8 ;;
chain)
  shift
  serve c-llama3 llama3 8001 health --gpu-memory-utilization $1 --dtype bfloat16
  serve c-gemma gemma 8002 health --gpu-memory-utilization $2 --kv-cache-dtype fp8
  serve c-decilm llama3 8003 health --gpu-memory-utilization $3 --kv-cache-dtype fp8
  serve c-phi3 phi3 8004 health --gpu-memory-utilization $4 --kv-cache-dtype fp8 --max-model-len 18000
  serve c-stablelm stablelm 8005 health --gpu-memory-utilization $5 --dtype float16 --kv-cache-dtype fp8
  for p in $PIDS; do kill -- -$p 2>/dev/null; done; sleep 3 ;;
chain4)
  # The planner's fractions for the seed on vLLM 0.24 with CUDA graphs, StableLM left out (fp16 with
  # fp8 KV cache fails with CUDA graphs on 0.24).
  shift
  serve c4-llama3 llama3 8001 health --gpu-memory-utilization $1 --dtype bfloat16
  serve c4-gemma gemma 8002 health --gpu-memory-utilization $2 --kv-cache-dtype fp8
  serve c4-decilm llama3 8003 health --gpu-memory-utilization $3 --kv-cache-dtype fp8
  serve c4-phi3 phi3 8004 health --gpu-memory-utilization $4 --kv-cache-dtype fp8 --max-model-len 18000
  for p in $PIDS; do kill -- -$p 2>/dev/null; done; sleep 3 ;;
esac
