"""Teacher .onnx uploads: standard operators only, no external data (never opened), one float
input and one output."""

from pathlib import Path

import numpy as np
import onnx
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper

from tests.app.files.conftest import refused, upload_checked


def linear_model(
    inputs: int = 4, classes: int = 3, batch: str | int = "batch", domain: str = ""
) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((inputs, classes), np.float32), "weight")
    node = helper.make_node("MatMul", ["input", "weight"], ["logits"], domain=domain)
    graph = helper.make_graph(
        [node],
        "teacher",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, inputs])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_valid_model_signature_is_described(client: TestClient) -> None:
    body = upload_checked(client, "t.onnx", linear_model().SerializeToString(), "teacher")
    assert body["status"] == "ready", body
    assert body["info"] == {
        "format": "onnx",
        "input": {"name": "input", "shape": ["batch", 4], "dtype": "float32"},
        "output": {"name": "logits", "shape": ["batch", 3], "dtype": "float32"},
        "opsets": {"ai.onnx": 17},
        "params": 12,
    }


def external(location: str) -> bytes:
    model = linear_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return model.SerializeToString()


def test_external_data_is_refused_and_never_opened(client: TestClient, tmp_path: Path) -> None:
    for location in ("../../etc/passwd", "/etc/passwd", str(tmp_path / "weights.bin")):
        body = upload_checked(client, "t.onnx", external(location), "teacher")
        refused(body, "initializer 'weight'", repr(location), "external data")


def test_custom_domains_and_functions_are_refused(client: TestClient) -> None:
    custom = linear_model(domain="com.evil")
    custom.opset_import.append(helper.make_opsetid("com.evil", 1))
    refused(upload_checked(client, "t.onnx", custom.SerializeToString(), "teacher"), "'com.evil'")
    model = linear_model()
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    refused(upload_checked(client, "t.onnx", model.SerializeToString(), "teacher"), "com.microsoft")
    with_function = linear_model()
    with_function.functions.append(
        helper.make_function("local", "f", ["a"], ["b"], [], [helper.make_opsetid("", 17)])
    )
    refused(
        upload_checked(client, "t.onnx", with_function.SerializeToString(), "teacher"),
        "local functions",
    )


def test_signature_problems_are_refused(client: TestClient) -> None:
    model = linear_model()
    model.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    refused(upload_checked(client, "t.onnx", model.SerializeToString(), "teacher"), "2 inputs")
    ints = linear_model()
    ints.graph.input[0].type.tensor_type.elem_type = TensorProto.INT32  # not float, not bytes
    refused(upload_checked(client, "t.onnx", ints.SerializeToString(), "teacher"), "int32")
    refused(upload_checked(client, "t.onnx", b"\x08garbage", "teacher"))
