"""Text for classification (.jsonl `text` + `label`, .csv with a text column): each text is its
UTF-8 bytes cut to `max_length` and padded with byte 0; labels become class indices; an
unlabelled file is a transfer set; problems name the row at fault."""

import json

import numpy as np
from fastapi.testclient import TestClient

from app.files.text_examples import decode, encode
from app.settings import Settings
from tests.app.files.conftest import refused, stored_array, upload_checked

REVIEWS = [("a fine film", "pos"), ("dull and long", "neg"), ("très bien, 好", "pos")] * 4


def jsonl(rows: list[dict[str, object]]) -> bytes:
    return ("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n").encode()


def test_a_labelled_jsonl_file_is_a_text_classification_set(
    client: TestClient, settings: Settings
) -> None:
    content = jsonl([{"text": t, "label": label, "id": i} for i, (t, label) in enumerate(REVIEWS)])
    body = upload_checked(client, "reviews.jsonl", content, "dataset", max_length=12)
    assert body["status"] == "ready", body
    info = body["info"]
    assert (info["task"], info["modality"], info["format"]) == ("classification", "text", "jsonl")
    assert (info["input_shape"], info["dtype"], info["rows"]) == ([12], "uint8", 12)
    assert (info["num_classes"], info["class_names"], info["labelled"]) == (2, ["neg", "pos"], True)
    # "dull and long" (13 bytes) and "très bien, 好" (16 bytes) are cut to 12.
    assert info["truncated"] == 8
    x = stored_array(settings, info["arrays"]["x"])
    y = stored_array(settings, info["arrays"]["y"])
    assert np.array_equal(x, encode([t for t, _ in REVIEWS], 12)[0])
    assert y.tolist() == [1, 0, 1] * 4
    # A cut that splits a character drops it; the padding is not text.
    assert [decode(r) for r in x[:3]] == ["a fine film", "dull and lon", "très bien, "]


def test_integer_labels_are_class_indices_and_no_labels_is_a_transfer_set(
    client: TestClient, settings: Settings
) -> None:
    labelled = upload_checked(
        client, "n.jsonl", jsonl([{"text": "x", "label": 0}, {"text": "y", "label": 2}]), "dataset"
    )
    assert labelled["info"]["num_classes"] == 3 and labelled["info"]["class_names"] is None
    assert labelled["info"]["input_shape"] == [256]  # the default max_length
    unlabelled = upload_checked(
        client,
        "u.jsonl",
        jsonl([{"text": t} for t, _ in REVIEWS]),
        "dataset",
        task="classification",
        max_length=16,
    )
    info = unlabelled["info"]
    assert unlabelled["status"] == "ready", unlabelled
    assert (info["labelled"], info["modality"], info["rows"]) == (False, "text", 12)
    assert "y" not in info["arrays"]
    # Without task=classification the same lines are a language-model corpus.
    corpus = upload_checked(client, "c.jsonl", jsonl([{"text": "abc " * 1200}]), "dataset")
    assert corpus["info"]["task"] == "language_model"


def test_a_csv_text_column_is_text_and_its_other_columns_are_ignored(
    client: TestClient, settings: Settings
) -> None:
    rows = "\n".join(f'{i},"{t}",{label}' for i, (t, label) in enumerate(REVIEWS))
    body = upload_checked(
        client,
        "r.csv",
        f"id,review,stars\n{rows}\n".encode(),
        "dataset",
        text_column="review",
        label_column="stars",
        max_length=20,
    )
    assert body["status"] == "ready", body
    info = body["info"]
    assert (info["modality"], info["text_column"], info["label_column"]) == (
        "text",
        "review",
        "stars",
    )
    assert info["ignored_columns"] == ["id"] and info["class_names"] == ["neg", "pos"]
    x = stored_array(settings, info["arrays"]["x"])
    assert np.array_equal(x, encode([t for t, _ in REVIEWS], 20)[0])
    # The default text column is "text".
    plain = upload_checked(client, "p.csv", b"text,label\nhello,a\nworld,b\n", "dataset")
    assert plain["info"]["modality"] == "text" and plain["info"]["num_classes"] == 2


def test_text_problems_name_the_row(client: TestClient) -> None:
    cases = [
        (
            "a.jsonl",
            jsonl([{"text": "ok", "label": "a"}, {"text": "no"}]),
            {},
            ("1 of 2", "no label"),
        ),
        (
            "a.jsonl",
            jsonl([{"text": "ok", "label": "a"}, {"text": "b", "label": [1]}]),
            {},
            ("line 2",),
        ),
        (
            "a.jsonl",
            jsonl([{"text": "a\u0000b", "label": "a"}, {"text": "b", "label": "b"}]),
            {},
            ("row 1", "NUL"),
        ),
        (
            "a.jsonl",
            jsonl([{"text": "a", "label": "x"}, {"text": "b", "label": "x"}]),
            {},
            ("1 class",),
        ),
        ("a.csv", b"text,label\nhi,a\n,b\nyo,\n", {}, ("row 3", "empty")),
        ("a.csv", b"x,label\n1,a\n2,b\n", {"text_column": "review"}, ("no column 'review'",)),
    ]
    for name, content, fields, needles in cases:
        refused(upload_checked(client, name, content, "dataset", **fields), *needles)
    for fields, param in (
        ({"max_length": "0"}, "max_length"),
        ({"task": "images"}, "task"),
        ({"context": "32", "max_length": "8"}, "context"),
        ({"task": "language_model", "max_length": "8"}, "max_length"),
    ):
        response = client.post(
            "/v1/files",
            data={"purpose": "dataset", **fields},
            files={"file": ("a.jsonl", jsonl([{"text": "t", "label": 1}]))},
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["param"] == param, response.text
