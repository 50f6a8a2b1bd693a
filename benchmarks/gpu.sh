#!/usr/bin/env bash
# The CUDA rows of the benchmark, on a machine with a GPU, within about 8 minutes:
#   LeNet-300-100 at level 0 and with 20% of its weights left, populations of 4/8/16
#   LeNets against the same trained in turn, ResNet-20, VGG-19, the ViT-tiny-shaped timm
#   model of specs/vit_mnist.yaml against a plain timm loop (needs ./plugins/lth-suite-timm's
#   timm), and the speed options fp32 / tf32 / bf16 / channels-last on LeNet, Conv-4 and
#   VGG-19; then what a ticket buys: forward latency in every format
#   (benchmarks/formats.py --device cuda).
# It replaces the CUDA section of benchmarks/RESULTS.md (the CPU section stays).
#
#   bash benchmarks/gpu.sh            # from the repository root, in its environment
#   LTH_GPU_BUDGET_S=300 bash benchmarks/gpu.sh
#
# Without a CUDA device it says so and exits 0: nothing is measured or written.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
budget=${LTH_GPU_BUDGET_S:-480}

if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
    echo "benchmarks/gpu.sh: $PYTHON cannot import torch: activate lth-suite's environment" >&2
    exit 2
fi
device=$("$PYTHON" -c 'import torch
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>/dev/null)
if [ -z "$device" ]; then
    echo "benchmarks/gpu.sh: no CUDA device here (torch.cuda.is_available() is False): nothing measured"
    exit 0
fi
echo "benchmarks/gpu.sh: measuring on ${device}, at most ${budget} s"
nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu --format=csv 2>/dev/null || true
# The budget bounds the whole run: RESULTS.md is only written when every row was measured.
timeout --signal=INT "${budget}" "$PYTHON" benchmarks/bench.py --device cuda \
    --models lenet,resnet20,vgg19,vit,population,options \
    --options fp32,tf32,bf16,channels_last \
    --iterations 2000 --repeats 3 \
    --note "measured by benchmarks/gpu.sh on ${device}" "$@"
# What a ticket buys on the GPU: LeNet-300-100 and Conv-4 forwards as dense, csr, bsr,
# shrunk and (a 2:4 ticket) 2:4 semi-structured, batch 1 and 64: its own section of RESULTS.md.
timeout --signal=INT "${LTH_GPU_FORMATS_BUDGET_S:-180}" "$PYTHON" benchmarks/formats.py \
    --device cuda --note "measured by benchmarks/gpu.sh on ${device}"

