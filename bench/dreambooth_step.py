"""Benchmark: one DreamBooth training step and one generated image, on Stable Diffusion 1.5-sized models.

The UNet, VAE and CLIP ViT-L/14 text encoder are built with random weights from SD 1.5's configs (written
below), so no download is needed and the cost is the real one; the tokenizer is the tiny one trained on the
spot (the text encoder always reads 77 positions, so the vocabulary does not change the cost). Runs the
backend's own training loop and pipeline (mining/backends/dreambooth.py) and prints parameter counts, the
median step time after warm-up, generation time per image and peak memory.

    python bench/dreambooth_step.py --device cuda                      # SD 1.5 size, 512 px, bf16
    python bench/dreambooth_step.py --tiny                             # tiny models on the CPU, seconds
    python bench/dreambooth_step.py --device cpu --resolution 256 --steps 2 --warmup 1 --inference-steps 2
"""

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
SD15_VAE = {
    "sample_size": 512,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "scaling_factor": 0.18215,
}
CLIP_VIT_L14_TEXT = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "vocab_size": 49408,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}


def sd15_components(device: str, dtype: str):
    """SD 1.5-shaped components with random weights, initialised directly on the device."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from mining.backends.dreambooth import dreambooth_components_make, dreambooth_components_tiny

    resolved_device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    )
    tiny = dreambooth_components_tiny()  # for its tokenizer and SD 1.5's noise schedule
    torch.manual_seed(0)
    with resolved_device:
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                **CLIP_VIT_L14_TEXT,
                bos_token_id=tiny.tokenizer.bos_token_id,
                eos_token_id=tiny.tokenizer.eos_token_id,
                pad_token_id=tiny.tokenizer.pad_token_id,
            )
        )
    return dreambooth_components_make(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tiny.tokenizer,
        scheduler=tiny.scheduler,
        device=str(resolved_device),
        dtype=dtype,
        source="sd15 configs",
    )


def peak_memory(device) -> str:
    import torch

    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB allocated (torch.cuda peak)"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS (process peak so far)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto")
    parser.add_argument(
        "--dtype", default="auto", help="auto (bf16 on CUDA, float32 on CPU), float32, bfloat16"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny random components instead of SD 1.5-sized")
    parser.add_argument("--resolution", type=int, default=None, help="default 512 (32 with --tiny)")
    parser.add_argument("--method", choices=["lora", "full"], default="lora")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="training steps before timing")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--inference-steps", type=int, default=30)
    parser.add_argument("--images", type=int, default=2, help="timed generated images (after one warm-up)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from PIL import Image, ImageDraw

    from mining.backends.dreambooth import PAPER_PROMPTS, DreamBoothConfig, dreambooth_components_tiny
    from mining.backends.dreambooth import dreambooth_instance as instance_run

    resolution = args.resolution or (32 if args.tiny else 512)
    started = time.perf_counter()
    if args.tiny:
        components = dreambooth_components_tiny(resolution=resolution, device=args.device)
    else:
        components = sd15_components(args.device, args.dtype)
    device = components.device
    print(
        f"components: {'tiny' if args.tiny else 'SD 1.5 configs'}, random weights, {device}, {components.dtype}, "
        f"built in {time.perf_counter() - started:.1f} s; torch threads {torch.get_num_threads()}"
    )
    for name in ("unet", "vae", "text_encoder"):
        count = sum(param.numel() for param in getattr(components, name).parameters())
        print(f"  {name:<13} {count / 1e6:>9.2f} M parameters")

    images = []
    for index in range(3):
        image = Image.new("RGB", (resolution, resolution), (200, 180 - 30 * index, 150))
        ImageDraw.Draw(image).ellipse(
            (resolution // 4, resolution // 5, resolution // 2, resolution // 2), fill=(20, 40, 160)
        )
        images.append(image)
    config = DreamBoothConfig(
        method=args.method,
        resolution=resolution,
        train_steps=args.warmup + args.steps,
        batch_size=args.batch_size,
        inference_steps=args.inference_steps,
        images_per_prompt=1,
    )
    stamps: list[float] = []

    def on_step(done: int, total: int) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())

    with instance_run(components, category="headphones", token="<twin-bench>", config=config) as instance:
        trainable = sum(param.numel() for param in components.unet.parameters() if param.requires_grad)
        print(
            f"  trainable     {trainable / 1e6:>9.2f} M parameters in the UNet ({args.method}) + 1 token row"
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        stamps.append(time.perf_counter())
        report = instance.train(images, on_step=on_step)
        step_times = [after - before for before, after in zip(stamps, stamps[1:], strict=False)][
            args.warmup :
        ]
        print(
            f"training step ({resolution} px, batch {args.batch_size}, {args.method}): "
            f"median {statistics.median(step_times):.3f} s over {len(step_times)} steps "
            f"(min {min(step_times):.3f}, max {max(step_times):.3f}); first step incl. VAE encode "
            f"{stamps[1] - stamps[0]:.3f} s; last loss {report.losses[-1]:.4f}"
        )
        print(f"  peak memory, training: {peak_memory(device)}")

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        instance.generate(PAPER_PROMPTS[:1])  # warm-up: pipeline construction, kernels
        prompts = [PAPER_PROMPTS[index % len(PAPER_PROMPTS)] for index in range(args.images)]
        stamps.clear()
        stamps.append(time.perf_counter())
        instance.generate(prompts, on_step=on_step)
        elapsed = time.perf_counter() - stamps[0]
        denoise = [after - before for before, after in zip(stamps, stamps[1:], strict=False)]
        print(
            f"generation ({resolution} px, {args.inference_steps} steps, guidance 7.5): "
            f"{elapsed / args.images:.3f} s per image over {args.images} images; "
            f"median denoising step {statistics.median(denoise):.3f} s (CFG batch of 2)"
        )
        print(f"  peak memory, generation: {peak_memory(device)}")


if __name__ == "__main__":
    main()
