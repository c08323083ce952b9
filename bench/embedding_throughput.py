"""Benchmark: the embedding pipeline's images per second against a naive loop, same model, same images.

    python bench/embedding_throughput.py [--images 256] [--naive-images 64] [--repeats 3] [--device cpu|cuda]
        [--model ViT-B-32] [--batch-size 64] [--workers 2] [--precision auto]

- pipeline: ``mining.backends.embedders`` as the embed stage runs it: batches of --batch-size, JPEG decoding and
  preprocessing in --workers DataLoader processes, ``torch.inference_mode``, precision "auto" (bf16 where the
  CPU has bf16 matrix units, and on CUDA);
- naive: one image at a time, decoded inside the loop, the same model in fp32 under ``torch.no_grad``.

The target of issue 4: the pipeline at least 3x the naive loop. The model has random weights (nothing can be
downloaded here): speed doesn't depend on the values of the weights. Images are 640x480 JPEGs (quality 90)
drawn procedurally: shapes on a textured background, so decoding costs what a photo's does. Figures are
medians of --repeats runs after a warm-up; the descriptor embedder's throughput is printed too.
"""

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def images_make(folder: Path, count: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for number in range(count):
        background = rng.integers(0, 256, size=(480 // 8, 640 // 8, 3), dtype=np.uint8)
        picture = Image.fromarray(background).resize((640, 480), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(picture)
        for _ in range(6):
            x, y = rng.integers(0, 560), rng.integers(0, 400)
            w, h = rng.integers(40, 200, size=2)
            draw.ellipse((x, y, x + w, y + h), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=90)
        path = folder / f"{number:05d}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def read(path: Path) -> bytes:
    return path.read_bytes()


def pipeline_rate(embedder, paths: list[Path], *, batch_size: int, workers: int) -> float:
    started = time.perf_counter()
    count = sum(len(batch) for batch in embedder.embed(paths, read, batch_size=batch_size, workers=workers))
    return count / (time.perf_counter() - started)


def naive_rate(model, preprocess, paths: list[Path], device: str) -> float:
    import torch

    started = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            with Image.open(path) as image:
                pixels = preprocess(image.convert("RGB")).unsqueeze(0).to(device)
            features = model.encode_image(pixels)
            features = features / features.norm(dim=-1, keepdim=True)
            features.cpu().numpy()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(paths) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=256, help="images per pipeline run")
    parser.add_argument("--naive-images", type=int, default=64, help="images per naive run (it is slow)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    import open_clip
    import torch

    from mining.backends.embedders import EmbedderSpec, embedder_load, embedder_spec_parse, precision_resolve

    folder = Path(tempfile.mkdtemp(prefix="twin-embed-bench-"))
    paths = images_make(folder, max(args.images, args.naive_images))
    spec = EmbedderSpec(family="open_clip", model=args.model, pretrained=None)
    torch.manual_seed(0)
    embedder = embedder_load(spec, device=args.device, precision=args.precision, allow_random_weights=True)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(args.model, pretrained=None)
    model = model.to(args.device).eval()
    precision = precision_resolve(args.precision, args.device)
    print(
        f"open_clip {args.model}, random weights, device {args.device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs"
    )
    if args.device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name()}")
    print(f"{len(paths)} JPEGs of 640x480 (quality 90) in {folder}")

    # Warm-up: first calls allocate and tune kernels.
    pipeline_rate(embedder, paths[: args.batch_size], batch_size=args.batch_size, workers=args.workers)
    naive_rate(model, preprocess, paths[:4], args.device)

    pipeline = [
        pipeline_rate(embedder, paths[: args.images], batch_size=args.batch_size, workers=args.workers)
        for _ in range(args.repeats)
    ]
    naive = [
        naive_rate(model, preprocess, paths[: args.naive_images], args.device) for _ in range(args.repeats)
    ]
    descriptor = embedder_load(embedder_spec_parse("descriptor"))
    descriptor_rates = [
        pipeline_rate(descriptor, paths[: args.images], batch_size=args.batch_size, workers=args.workers)
        for _ in range(args.repeats)
    ]

    print(f"\n{'':44} {'images/s (median)':>18} {'runs':>28}")
    rows = [
        (f"pipeline ({precision}, batch {args.batch_size}, {args.workers} workers)", pipeline),
        ("naive loop (fp32, one image at a time)", naive),
        (f"descriptor (batch {args.batch_size}, {args.workers} workers)", descriptor_rates),
    ]
    for name, rates in rows:
        runs = ", ".join(f"{r:.1f}" for r in rates)
        print(f"{name:44} {statistics.median(rates):18.1f} {runs:>28}")
    ratio = statistics.median(pipeline) / statistics.median(naive)
    verdict = "PASS" if ratio >= 3 else "FAIL"
    print(f"\npipeline / naive: {ratio:.1f}x (target at least 3x): {verdict}")


if __name__ == "__main__":
    main()
