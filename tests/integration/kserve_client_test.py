#!/usr/bin/python3
"""A KServe v2 client written from the Open Inference Protocol's field numbers alone.

It encodes inference.ModelInferRequest in protobuf wire format by hand (no generated code from
this project), calls /inference.GRPCInferenceService/ModelInfer with grpcio, decodes the response
by hand, and checks that the top-1 class equals the one the typed API returned (--expect-top1).
Also checks ServerLive, ServerReady and ModelReady the same way. Exit 0 on success.
"""
import argparse
import struct
import sys

import grpc

# --- protobuf wire format ------------------------------------------------------------------
VARINT, LEN = 0, 2


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, wire_type, payload):
    tag = varint((number << 3) | wire_type)
    if wire_type == LEN:
        return tag + varint(len(payload)) + payload
    return tag + payload


def string_field(number, text):
    return field(number, LEN, text.encode())


def parse(message):
    """Yields (field number, wire type, value) of one message level."""
    i = 0
    while i < len(message):
        key, i = read_varint(message, i)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, i = read_varint(message, i)
        elif wire_type == LEN:
            length, i = read_varint(message, i)
            value, i = message[i:i + length], i + length
        elif wire_type == 5:
            value, i = message[i:i + 4], i + 4
        elif wire_type == 1:
            value, i = message[i:i + 8], i + 8
        else:
            raise ValueError("unsupported wire type %d" % wire_type)
        yield number, wire_type, value


def read_varint(data, i):
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def packed_varints(data):
    values, i = [], 0
    while i < len(data):
        v, i = read_varint(data, i)
        values.append(v)
    return values


# --- Open Inference Protocol messages (field numbers from the spec) ----------------------------
def model_infer_request(model, image):
    # InferInputTensor: name=1, datatype=2, shape=3 (packed int64), contents=5.
    tensor = string_field(1, "image") + string_field(2, "BYTES") + field(3, LEN, varint(1))
    # top_k parameter: map<string, InferParameter> parameters = 4; InferParameter.int64_param = 2.
    parameter = string_field(1, "top_k") + field(2, LEN, field(2, VARINT, varint(3)))
    # ModelInferRequest: model_name=1, model_version=2, id=3, parameters=4, inputs=5,
    # raw_input_contents=7 (BYTES elements carry a 4-byte little-endian length prefix).
    return (string_field(1, model) + string_field(3, "req-1") + field(4, LEN, parameter) +
            field(5, LEN, tensor) + field(7, LEN, struct.pack("<I", len(image)) + image))


def output_tensors(response):
    outputs = {}
    for number, _, value in parse(response):
        if number == 5:  # InferOutputTensor
            name, contents = None, b""
            for n, _, v in parse(value):
                if n == 1:
                    name = v.decode()
                elif n == 5:
                    contents = v
            outputs[name] = contents
    return outputs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--expect-top1", type=int, required=True)
    args = ap.parse_args()
    channel = grpc.insecure_channel(args.address)
    raw = lambda method: channel.unary_unary(
        "/inference.GRPCInferenceService/" + method,
        request_serializer=lambda b: b, response_deserializer=lambda b: b)

    live = dict((n, v) for n, _, v in parse(raw("ServerLive")(b"", timeout=10)))
    assert live.get(1) == 1, "ServerLive did not say live"
    ready = dict((n, v) for n, _, v in parse(raw("ServerReady")(b"", timeout=10)))
    assert ready.get(1) == 1, "ServerReady did not say ready"
    model_ready = dict((n, v) for n, _, v in
                       parse(raw("ModelReady")(string_field(1, args.model), timeout=10)))
    assert model_ready.get(1) == 1, "ModelReady did not say ready"

    with open(args.image, "rb") as f:
        image = f.read()
    response = raw("ModelInfer")(model_infer_request(args.model, image), timeout=60)
    top = dict((n, v) for n, _, v in parse(response))
    assert top.get(1, b"").decode() == args.model, "model_name not echoed"
    assert top.get(3, b"").decode() == "req-1", "id not echoed"
    outputs = output_tensors(response)
    # InferTensorContents.int_contents = 2 (packed int32).
    ids = []
    for n, _, v in parse(outputs["class_ids"]):
        if n == 2:
            ids.extend(packed_varints(v))
    print("KServe class_ids:", ids)
    if len(ids) != 3:
        print("expected 3 classes (top_k parameter), got", len(ids))
        return 1
    if ids[0] != args.expect_top1:
        print("top-1 differs: KServe %d, typed API %d" % (ids[0], args.expect_top1))
        return 1
    print("KServe top-1 matches the typed API:", ids[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
