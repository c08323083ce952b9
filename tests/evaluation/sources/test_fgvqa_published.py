"""The published FGVQA rows: normalised answers and types, images from structs or paths, sources and domains."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluation.sources import SourceError
from evaluation.sources.fgvqa_published import (
    PublishedQuery,
    published_queries,
    published_sources,
    source_domain,
)
from tests.conftest import image_bytes

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SCHEMA = pa.schema(
    [
        ("question", pa.string()),
        ("answer", pa.string()),
        ("question_type", pa.string()),
        ("images", pa.list_(IMAGE)),
        ("dataset_source", pa.string()),
        ("extra", pa.string()),
    ]
)


def image(seed: int) -> dict:
    return {"bytes": image_bytes(seed=seed), "path": None}


ROWS = [
    (
        "Same bird?",
        "Yes",
        "pairwise",
        [image(0), image(1)],
        "fgvqa_cub",
        json.dumps({"instance_ids": [1, 1]}),
    ),
    ("Same bird?", "no", "pairwise", [image(2), image(3)], "fgvqa_cub", ""),
    ("How many?", "2", "multiple_choice", [image(4), image(5), image(6), image(7)], "fgvqa_cub", "not json"),
    ("Same product?", "no", "pairwise", [image(8), image(9)], "twin", None),
    ("How many?", " 0 ", "multiple_choice", [image(10), image(11), image(12), image(13)], "fgvqa_met", None),
]


def write(path: Path, rows=ROWS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {name: [row[i] for row in rows] for i, name in enumerate(SCHEMA.names)}
    pq.write_table(pa.Table.from_pydict(columns, schema=SCHEMA), path)
    return path


def test_reads_every_row_with_normalised_types_and_answers(tmp_path: Path):
    write(tmp_path / "data" / "test-00000-of-00001.parquet")
    queries = list(published_queries(tmp_path))
    assert [(q.dataset_source, q.question_type, q.answer, len(q.images), q.row) for q in queries] == [
        ("fgvqa_cub", "pair", "yes", 2, 0),
        ("fgvqa_cub", "pair", "no", 2, 1),
        ("fgvqa_cub", "multi", "2", 4, 2),
        ("twin", "pair", "no", 2, 3),
        ("fgvqa_met", "multi", "0", 4, 4),
    ]
    assert queries[0].images[1] == image_bytes(seed=1)
    assert queries[0].extra == {"instance_ids": [1, 1]}
    assert queries[2].extra == {}  # a malformed extra is dropped, not fatal
    assert isinstance(queries[0], PublishedQuery)


def test_filters_by_source_with_or_without_the_prefix(tmp_path: Path):
    write(tmp_path / "fgvqa.parquet")
    assert [q.row for q in published_queries(tmp_path, "fgvqa_cub")] == [0, 1, 2]
    assert [q.row for q in published_queries(tmp_path, "cub")] == [0, 1, 2]
    assert [q.row for q in published_queries(tmp_path / "fgvqa.parquet", "twin")] == [3]


def test_counts_per_source(tmp_path: Path):
    write(tmp_path / "a" / "part-0.parquet", ROWS[:3])
    write(tmp_path / "b" / "part-1.parquet", ROWS[3:])
    assert published_sources(tmp_path) == {"fgvqa_cub": 3, "twin": 1, "fgvqa_met": 1}


def test_domains():
    assert [source_domain(s) for s in ("twin", "fgvqa_ilias", "fgvqa_cub", "fgvqa_met")] == [
        "object",
        "object",
        "bird",
        "artwork",
    ]
    assert source_domain("fgvqa_google_landmarks") == "landmark"
    assert source_domain("fgvqa_inquire") == "species"
    assert source_domain("fgvqa_unknown") is None


def test_a_saved_datasets_folder_takes_the_test_split(tmp_path: Path):
    import datasets

    features = datasets.Features(
        {
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "question_type": datasets.Value("string"),
            "images": datasets.Sequence(datasets.Image()),
            "dataset_source": datasets.Value("string"),
        }
    )

    def split(rows):
        return datasets.Dataset.from_dict(
            {name: [row[i] for row in rows] for i, name in enumerate(features)}, features=features
        )

    datasets.DatasetDict({"train": split(ROWS[3:4]), "test": split(ROWS[:2])}).save_to_disk(
        str(tmp_path / "dd")
    )
    queries = list(published_queries(tmp_path / "dd"))
    assert [(q.answer, q.images[0]) for q in queries] == [
        ("yes", image_bytes(seed=0)),
        ("no", image_bytes(seed=2)),
    ]
    assert published_sources(tmp_path / "dd") == {"fgvqa_cub": 2}

    split(ROWS[4:]).save_to_disk(str(tmp_path / "single"))
    assert [q.dataset_source for q in published_queries(tmp_path / "single")] == ["fgvqa_met"]


def test_images_given_by_path_are_read_from_under_the_root(tmp_path: Path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(image_bytes(seed=20))
    (tmp_path / "images" / "b.jpg").write_bytes(image_bytes(seed=21))
    row = (
        "Same?",
        "yes",
        "pairwise",
        [{"bytes": None, "path": "images/a.jpg"}, {"bytes": None, "path": "images/b.jpg"}],
        "twin",
        None,
    )
    write(tmp_path / "q.parquet", [row])
    [query] = published_queries(tmp_path)
    assert query.images == [image_bytes(seed=20), image_bytes(seed=21)]

    escaping = ("Same?", "yes", "pairwise", [{"bytes": None, "path": "../../etc/passwd"}], "twin", None)
    write(tmp_path / "q.parquet", [escaping])
    with pytest.raises(SourceError, match="outside the dataset root"):
        list(published_queries(tmp_path))


@pytest.mark.parametrize(
    "row, message",
    [
        (
            ("Same?", "maybe", "pairwise", [image(0), image(1)], "twin", None),
            "must be yes or no, not 'maybe'",
        ),
        (("How many?", "4", "multiple_choice", [image(0)] * 4, "twin", None), "needs an answer from 0 to 3"),
    ],
)
def test_answers_that_cannot_be_normalised_are_refused(tmp_path: Path, row, message: str):
    write(tmp_path / "q.parquet", [row])
    with pytest.raises(SourceError, match=f"FGVQA row 0: .*{message}"):
        list(published_queries(tmp_path))


def test_a_root_without_the_format_says_what_it_looked_for(tmp_path: Path):
    with pytest.raises(SourceError, match=r"found no \*.parquet files and no datasets save_to_disk folder"):
        published_queries(tmp_path)
    pq.write_table(pa.table({"question": ["q"]}), tmp_path / "x.parquet")
    with pytest.raises(SourceError, match="lacks the column\\(s\\) answer, images, dataset_source"):
        published_queries(tmp_path)
