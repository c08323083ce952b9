"""ILIAS core_db: webdataset shards read as a stream, identity from __key__, queries left out, unsafe names refused."""

import io
import logging
import tarfile
from pathlib import Path

import pytest

from evaluation.sources import SourceError, source_labelled_images
from evaluation.sources.ilias import instance_of, split_key
from tests.conftest import image_bytes


def write_shard(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


CORE = {
    "bold_bimp_000/pos/P000_00.jpg": image_bytes(seed=0),
    "bold_bimp_000/pos/P000_00.bbox.json": b"[[1, 2, 3, 4]]",
    "bold_bimp_000/pos/P000_01.jpg": image_bytes(seed=1),
    "bold_bimp_000/query/Q000_00.jpg": image_bytes(seed=2),
    "zippy_zootlenibble_999/pos/P999_00.jpg": image_bytes(seed=3),
    "zippy_zootlenibble_999/pos/P999_00.download_url.txt": b"http://example.org/x.jpg",
}


def test_reads_shards_with_the_instance_from_the_key(tmp_path: Path):
    write_shard(tmp_path / "core_db" / "core_db-000000.tar", CORE)
    write_shard(
        tmp_path / "img_queries" / "img_queries-000000.tar", {"bold_bimp_000/query/Q000_00.jpg": b"x"}
    )
    images = source_labelled_images("ilias", tmp_path)
    assert [(image.key, image.label) for image in images] == [
        ("bold_bimp_000/pos/P000_00", "bold_bimp_000"),
        ("bold_bimp_000/pos/P000_01", "bold_bimp_000"),
        ("zippy_zootlenibble_999/pos/P999_00", "zippy_zootlenibble_999"),
    ]
    assert images[0].read() == image_bytes(seed=0)
    assert images[0].path == ""  # inline: nothing was extracted to disk
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "core_db-000000.tar",
        "img_queries-000000.tar",
    ]


def test_one_shard_as_root_and_queries_on_request(tmp_path: Path):
    from evaluation.sources.ilias import labelled_images

    shard = write_shard(tmp_path / "core.tar", CORE)
    assert len(labelled_images(shard)) == 3
    assert len(labelled_images(shard, include_queries=True)) == 4


def test_an_extracted_folder_of_the_same_files(tmp_path: Path):
    for name, content in CORE.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (tmp_path / "bold_bimp_000" / "pos" / "P000_01_bbox.png").write_bytes(image_bytes(format="PNG"))
    images = source_labelled_images("ilias", tmp_path)
    assert [(image.key, image.label) for image in images] == [
        ("bold_bimp_000/pos/P000_00", "bold_bimp_000"),
        ("bold_bimp_000/pos/P000_01", "bold_bimp_000"),
        ("zippy_zootlenibble_999/pos/P999_00", "zippy_zootlenibble_999"),
    ]
    assert images[1].read() == image_bytes(seed=1)


def test_flat_keys_and_unidentifiable_ones(tmp_path: Path, caplog):
    shard = write_shard(
        tmp_path / "core_db.tar",
        {"P012_00.jpg": b"a", "P012_01.jpg": b"b", "mug_3.jpg": b"c", "nokey.jpg": b"d", "Q012_00.jpg": b"e"},
    )
    with caplog.at_level(logging.WARNING):
        images = source_labelled_images("ilias", shard)
    assert [(image.key, image.label) for image in images] == [
        ("P012_00", "012"),
        ("P012_01", "012"),
        ("mug_3", "mug"),
    ]
    assert "1 images under" in caplog.text


@pytest.mark.parametrize("name", ["../evil/P000_00.jpg", "/abs/P000_00.jpg", "a/../../P000_00.jpg"])
def test_members_leading_outside_are_refused(tmp_path: Path, name: str):
    shard = write_shard(tmp_path / "core_db.tar", {name: image_bytes()})
    with pytest.raises(SourceError, match="outside the dataset root"):
        source_labelled_images("ilias", shard)
    assert not (tmp_path.parent / "evil").exists()


def test_links_inside_a_shard_are_not_followed(tmp_path: Path):
    shard = tmp_path / "core_db.tar"
    with tarfile.open(shard, "w") as archive:
        link = tarfile.TarInfo("inst/pos/P000_00.jpg")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
        info = tarfile.TarInfo("inst/pos/P000_01.jpg")
        content = image_bytes()
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    assert [image.key for image in source_labelled_images("ilias", shard)] == ["inst/pos/P000_01"]


def test_an_empty_or_broken_root_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SourceError, match="ILIAS: found no core_db images"):
        source_labelled_images("ilias", tmp_path)
    broken = tmp_path / "core_db.tar"
    broken.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(SourceError, match="is not a readable tar shard"):
        source_labelled_images("ilias", tmp_path)


def test_key_rules():
    assert split_key("a/b/P000_07.bbox.json") == ("a/b/P000_07", "bbox.json")
    assert split_key("a/README") is None
    assert instance_of("bold_bimp_000/pos/P000_07") == "bold_bimp_000"
    assert instance_of("T12345") is None
