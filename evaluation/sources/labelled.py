"""What every benchmark source yields: images with the identity that decides "same or not"."""

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelledImage:
    key: str  # unique within the source: a relative path, a webdataset __key__, a row id
    label: str  # the identity: instance, landmark, artwork, species
    path: str = ""  # a local file to read, or empty when the bytes come with the row
    data: bytes | None = None  # the encoded image, for sources that store images inline (parquet)
    name: str = ""  # a human-readable name for the label where the source has one (a species' name)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        with open(self.path, "rb") as handle:
            return handle.read()
