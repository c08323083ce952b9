"""What mining stores: one embedding vector per (image, embedder)."""

import numpy as np
from django.db import models

from annotation.models import Image


class ImageEmbedding(models.Model):
    """An image's L2-normalized embedding under one embedder (open_clip model and weights, or the descriptor).

    Vectors are float32 bytes: compact (2 KB at 512 dims), read back into one numpy matrix without parsing.
    The (image, embedder) pair is unique, so writing is an idempotent upsert and a re-run embeds only what is
    missing.
    """

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="embeddings")
    embedder_key = models.CharField(
        max_length=200, help_text='The embedder and its weights, e.g. "open_clip/ViT-B-32/laion2b_s34b_b79k".'
    )
    dim = models.PositiveIntegerField()
    vector = models.BinaryField(help_text="float32, little-endian, dim values.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["embedder_key", "image"], name="embedding_unique_per_image")
        ]

    def __str__(self) -> str:
        return f"{self.embedder_key} of image #{self.image_id}"

    def as_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.vector), dtype="<f4")
