"""manage.py make_demo_catalog --instances N --seed S --output DIR [--image-size PX]"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.demo_catalog.generator import demo_catalog_counts, demo_catalog_make


class Command(BaseCommand):
    help = (
        "Draws a procedural demo catalog (objects, near-twins, duplicate listings, bad images): "
        "DIR/manifest.jsonl, DIR/images/, DIR/ground_truth.json."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--instances", type=int, required=True, help="Distinct physical objects to draw.")
        parser.add_argument("--seed", type=int, required=True, help="Same seed, same catalog, byte for byte.")
        parser.add_argument("--output", type=Path, required=True, help="Folder to write the catalog into.")
        parser.add_argument(
            "--image-size", type=int, default=256, help="Image width and height (default 256)."
        )

    def handle(self, *args, **options) -> None:
        try:
            catalog = demo_catalog_make(
                output_dir=options["output"],
                instances=options["instances"],
                seed=options["seed"],
                image_size=options["image_size"],
            )
        except (ValueError, FileExistsError) as exc:
            raise CommandError(str(exc)) from None
        counts = demo_catalog_counts(catalog)
        self.stdout.write(f"Manifest:     {catalog.manifest_path}")
        self.stdout.write(f"Images:       {catalog.images_root}")
        self.stdout.write(f"Ground truth: {catalog.ground_truth_path}")
        self.stdout.write(
            f"Products: {counts['products']}, images: {counts['images']}, "
            f"duplicate listings: {counts['duplicates']}, twin pairs: {counts['twins']}, "
            f"bad images: {counts['bad_images']}"
        )
