"""manage.py make_folder_manifest DIR --output MANIFEST.jsonl [--classes CSV] [--id-prefix P]"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.importing.folder_manifest import FolderLayoutError, folder_manifest_build


class Command(BaseCommand):
    help = "Writes a catalog manifest for a folder-per-instance image set with a classes.csv (subject,class)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("root", type=Path, help="Folder with one sub-folder of images per instance.")
        parser.add_argument("--output", type=Path, required=True, help="Where to write the manifest.")
        parser.add_argument("--classes", type=Path, help="The classes CSV (default: ROOT/classes.csv).")
        parser.add_argument("--id-prefix", default="", help="Prefix for product ids (default: none).")

    def handle(self, *args, **options) -> None:
        try:
            result = folder_manifest_build(
                root=options["root"],
                output=options["output"],
                classes_csv=options["classes"],
                id_prefix=options["id_prefix"],
            )
        except FolderLayoutError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Wrote {result.products} products, {result.images} images to {result.manifest_path}"
        )
        if result.folders_without_class:
            self.stdout.write(
                f"Folders not listed in the classes file: {', '.join(result.folders_without_class)}"
            )
