"""The import report: counts of what happened and one entry per rejected row, image or exact duplicate."""

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ImportProblem:
    line: int
    product_id: str | None
    reason: str
    image: str | None = None


@dataclass
class ImportDuplicate:
    line: int
    product_id: str
    image: str
    duplicate_of_image_id: int
    duplicate_of_product_id: str


@dataclass
class ImportReport:
    manifest: str
    images_root: str
    source: str
    products: Counter = field(default_factory=Counter)
    images: Counter = field(default_factory=Counter)
    categories_created: int = 0
    rejections: list[ImportProblem] = field(default_factory=list)
    duplicates: list[ImportDuplicate] = field(default_factory=list)
    lines_read: int = 0
    duration_seconds: float = 0.0

    PRODUCT_OUTCOMES = ("imported", "updated", "unchanged", "rejected")
    IMAGE_OUTCOMES = ("imported", "updated", "unchanged", "rejected", "duplicates", "withdrawn")

    def summary(self) -> dict[str, Any]:
        """Counts only: small enough for a job row and a command's last lines."""
        return {
            "manifest": self.manifest,
            "images_root": self.images_root,
            "source": self.source,
            "lines_read": self.lines_read,
            "duration_seconds": round(self.duration_seconds, 3),
            "categories_created": self.categories_created,
            "products": {outcome: self.products[outcome] for outcome in self.PRODUCT_OUTCOMES},
            "images": {outcome: self.images[outcome] for outcome in self.IMAGE_OUTCOMES},
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "rejections": [asdict(problem) for problem in self.rejections],
            "duplicates": [asdict(duplicate) for duplicate in self.duplicates],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False)
