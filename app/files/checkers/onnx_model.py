"""A teacher as an ONNX model: standard operators only, all weights inside the file, one input
and one output. The input is float (numbers, images) or uint8 / int64 byte ids (text: UTF-8
bytes padded with byte 0, as Distillery's own text classifiers take them). External data files
are never opened."""

import math
from collections.abc import Iterator
from typing import Any

from app.files.formats import CheckContext, CheckError, Format, register

STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
FLOAT_TYPES = ("FLOAT", "FLOAT16", "DOUBLE", "BFLOAT16")
BYTE_TYPES = ("UINT8", "INT64")  # text as byte ids


def _graphs(graph: Any) -> Iterator[Any]:
    """The graph and every subgraph (If / Loop / Scan bodies)."""
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _graphs(sub)


def _tensors(graph: Any) -> Iterator[tuple[str, Any]]:
    """(where, TensorProto) of every initializer and tensor-valued attribute."""
    import onnx

    for tensor in graph.initializer:
        yield f"initializer {tensor.name!r}", tensor
    for sparse in graph.sparse_initializer:
        yield f"sparse initializer {sparse.values.name!r}", sparse.values
        yield f"sparse initializer {sparse.values.name!r} indices", sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            where = f"attribute {attr.name!r} of node {node.name or node.op_type!r}"
            if attr.type == onnx.AttributeProto.TENSOR:
                yield where, attr.t
            elif attr.type == onnx.AttributeProto.TENSORS:
                for tensor in attr.tensors:
                    yield where, tensor
            elif attr.type == onnx.AttributeProto.SPARSE_TENSOR:
                yield where, attr.sparse_tensor.values
                yield where, attr.sparse_tensor.indices


def _signature(value: Any) -> dict[str, Any]:
    import onnx

    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise CheckError(f"graph input/output {value.name!r} is a {kind}, not a tensor")
    tensor_type = value.type.tensor_type
    shape: list[int | str | None] | None = None
    if tensor_type.HasField("shape"):
        shape = []
        for dim in tensor_type.shape.dim:
            if dim.HasField("dim_value"):
                shape.append(int(dim.dim_value))
            elif dim.HasField("dim_param"):
                shape.append(dim.dim_param)
            else:
                shape.append(None)
    type_name = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
    except (KeyError, TypeError, ValueError):
        dtype = type_name.lower()
    return {"name": value.name, "shape": shape, "dtype": dtype, "elem_type": type_name}


def check(ctx: CheckContext) -> dict[str, Any]:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(ctx.path), load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        raise CheckError(f"not a readable ONNX model: {exc}") from None
    for graph in _graphs(model.graph):
        for where, tensor in _tensors(graph):
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                location = next((e.value for e in tensor.external_data if e.key == "location"), "?")
                raise CheckError(
                    f"{where} refers to external data {location!r}; upload a model with all "
                    "weights inside the .onnx file (external data files are never opened)"
                )
        for node in graph.node:
            if node.domain not in STANDARD_DOMAINS:
                raise CheckError(
                    f"node {node.name or node.op_type!r} uses operator {node.op_type!r} of "
                    f"domain {node.domain!r}; only the standard ONNX domains are allowed"
                )
    for opset in model.opset_import:
        if opset.domain not in STANDARD_DOMAINS:
            raise CheckError(
                f"the model imports the custom opset domain {opset.domain!r}; only the "
                "standard ONNX domains are allowed"
            )
    if len(model.functions):
        raise CheckError(
            f"the model defines local functions ({model.functions[0].name!r}); "
            "inline them before exporting"
        )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise CheckError(f"the ONNX checker refused the model: {first}") from None
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    if len(inputs) != 1:
        raise CheckError(
            f"the model has {len(inputs)} inputs ({', '.join(v.name for v in inputs)}); "
            "a teacher takes exactly one input tensor"
        )
    if len(graph.output) != 1:
        raise CheckError(
            f"the model has {len(graph.output)} outputs; a teacher gives exactly one (the logits)"
        )
    input_sig = _signature(inputs[0])
    if input_sig.pop("elem_type") not in FLOAT_TYPES + BYTE_TYPES:
        raise CheckError(
            f"input {input_sig['name']!r} is {input_sig['dtype']}, not a float tensor "
            "(or uint8 / int64 bytes of text)"
        )
    output_sig = _signature(graph.output[0])
    output_sig.pop("elem_type")
    params = sum(math.prod(t.dims) for t in graph.initializer)
    opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    return {
        "format": "onnx",
        "input": input_sig,
        "output": output_sig,
        "opsets": opsets,
        "params": int(params),
    }


register(Format("onnx", "teacher", (".onnx",), check))
