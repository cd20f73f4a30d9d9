"""Dataset .csv uploads: a header, numeric features, a label column named at upload."""

from collections.abc import Callable

import numpy as np
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.app.files.conftest import refused, stored_array, upload_checked


def test_string_labels_become_sorted_class_names(client: TestClient, settings: Settings) -> None:
    text = "a,species,b\n1.5,dog,2\n-3,cat,4e2\n0,eel,1\n7,dog,0\n"
    body = upload_checked(client, "d.csv", text.encode(), "dataset", label_column="species")
    info = body["info"]
    assert body["status"] == "ready", body
    assert info["class_names"] == ["cat", "dog", "eel"]
    assert (info["rows"], info["input_shape"], info["num_classes"]) == (4, [2], 3)
    assert info["labelled"] is True and info["dtype"] == "float32"
    x = stored_array(settings, info["arrays"]["x"])
    assert x.tolist() == [[1.5, 2.0], [-3.0, 400.0], [0.0, 1.0], [7.0, 0.0]]
    assert stored_array(settings, info["arrays"]["y"]).tolist() == [1, 0, 2, 1]


def test_integer_labels_and_default_label_column(client: TestClient, settings: Settings) -> None:
    body = upload_checked(client, "d.csv", b"f1,f2,label\n1,2,0\n3,4,2\n5,6,1\n", "dataset")
    info = body["info"]
    assert (info["num_classes"], info["class_names"]) == (3, None)
    assert stored_array(settings, info["arrays"]["y"]).tolist() == [0, 2, 1]


def test_csv_without_the_label_column_is_unlabelled(client: TestClient) -> None:
    body = upload_checked(client, "d.csv", b"f1,f2\n1,2\n3,4\n", "dataset")
    assert body["info"]["labelled"] is False and set(body["info"]["arrays"]) == {"x"}


def test_csv_problems_name_the_column_and_row(client: TestClient) -> None:
    cases = [
        (b"a,b,label\n1,2,0\n1,nan,1\n", ("'b'", "row 2", "NaN")),
        (b"a,b,label\n1,2,0\n1,2,1\n1,inf,0\n", ("'b'", "row 3")),
        (b"a,b,label\n1,2,0\nhello,2,1\n", ("'a'", "row 2", "'hello'", "not a number")),
        (b"a,b,label\n1,2,0\n1,2\n", ("row 2", "2 fields")),
        (b"a,b,label\n1,2,0\n1,2,-4\n", ("row 2", "class -4")),
        (b"1,2,3\n4,5,6\n", ("header",)),
        (b"a,a,label\n1,2,0\n", ("'a' twice",)),
        (b"a,label\n", ("no data rows",)),
        (b"a,label\n1,0\n2,0\n", ("1 class",)),
        (b"a,label\n1,0\n\xff\xfe,1\n", ("UTF-8",)),
    ]
    for text, needles in cases:
        refused(upload_checked(client, "d.csv", text, "dataset"), *needles)


def test_more_columns_than_the_limit_is_refused(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(max_csv_columns=3)
    body = upload_checked(client, "d.csv", b"a,b,c,label\n1,2,3,0\n", "dataset")
    refused(body, "more than 3 columns")


def test_a_really_wide_header_is_refused_before_it_is_split(client: TestClient) -> None:
    header = ",".join(f"c{i}" for i in range(100_001)).encode()
    body = upload_checked(client, "wide.csv", header + b"\n", "dataset")
    refused(body, "more than 100000 columns")


def test_float_precision_is_float32(client: TestClient, settings: Settings) -> None:
    body = upload_checked(client, "d.csv", b"a,label\n0.1,0\n0.2,1\n", "dataset")
    x = stored_array(settings, body["info"]["arrays"]["x"])
    assert x.dtype == np.float32
