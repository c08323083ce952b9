#!/usr/bin/env bash
# The figures a lent GPU machine can show for the mining stage (random weights at the real model sizes):
# CLIP embedding throughput (pipeline against a naive loop) and a DreamBooth LoRA step at Stable Diffusion 1.5
# size. Needs torch, open_clip and diffusers (requirements-ml.txt); nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
python bench/embedding_throughput.py --device cuda --images 2048 --naive-images 256 --batch-size 256 --workers 8
python bench/dreambooth_step.py --device cuda
