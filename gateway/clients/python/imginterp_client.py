#!/usr/bin/python3
"""Python client of the image-interpreter gateway.

Submits an image to a pipeline (SubmitJob), watches the job (WatchJob) printing each state
change, and on success downloads every stage's result (DownloadResult) and writes the images it
holds. Uses Debian's python3-grpcio and the stubs the build generates with grpc_python_plugin
(<build>/python, put on PYTHONPATH or passed with --stubs).

    imginterp_client.py --gateway 127.0.0.1:18000 --pipeline priors --out out/ photo.jpg

Exit status: 0 when the job succeeded, 1 when it failed or was cancelled, 2 on usage errors.
"""
import argparse
import os
import sys


def load_stubs(path):
    if path:
        sys.path.insert(0, path)
    import importlib
    import pkgutil
    import imginterp.v1 as package
    from google.protobuf import symbol_database
    # Import every family's messages so results (google.protobuf.Any) can be decoded.
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.endswith("_pb2"):
            importlib.import_module("imginterp.v1." + module.name)
    from imginterp.v1 import gateway_pb2, gateway_pb2_grpc, bus_pb2
    return gateway_pb2, gateway_pb2_grpc, bus_pb2, symbol_database.Default()


def write_images(message, prefix, out_dir, written):
    """Writes every imginterp.v1.Image inside `message`; returns the file names."""
    if message.DESCRIPTOR.full_name == "imginterp.v1.Image":
        if message.data:
            ext = ".jpg" if message.media_type == "image/jpeg" else ".png"
            name = prefix + ("" if not written else "_%d" % len(written)) + ext
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(message.data)
            written.append(name)
        return written
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE or field.message_type.GetOptions().map_entry:
            continue
        items = value if field.label == field.LABEL_REPEATED else [value]
        for item in items:
            write_images(item, prefix, out_dir, written)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image")
    ap.add_argument("--gateway", default="127.0.0.1:8000")
    ap.add_argument("--pipeline", default="priors")
    ap.add_argument("--out", default="out-python")
    ap.add_argument("--idempotency-key", default="")
    ap.add_argument("--stubs", default=os.environ.get("IMGINTERP_PYTHON_STUBS", ""),
                    help="folder with the generated imginterp/ and inference/ packages")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args(argv)

    import grpc
    gateway_pb2, gateway_pb2_grpc, bus_pb2, symbols = load_stubs(args.stubs)
    channel = grpc.insecure_channel(args.gateway, options=[
        ("grpc.max_receive_message_length", 256 << 20),
        ("grpc.max_send_message_length", 256 << 20)])
    stub = gateway_pb2_grpc.GatewayServiceStub(channel)

    with open(args.image, "rb") as f:
        data = f.read()
    request = gateway_pb2.SubmitJobRequest(idempotency_key=args.idempotency_key)
    request.job.pipeline = args.pipeline
    request.job.image.data = data
    submitted = stub.SubmitJob(request, timeout=30)
    print("job", submitted.job_id, "submitted" if submitted.created else "(existing)")

    final = None
    for job in stub.WatchJob(gateway_pb2.WatchJobRequest(job_id=submitted.job_id),
                             timeout=args.timeout):
        stages = ", ".join("%s:%s" % (s.name, bus_pb2.StageState.Name(s.state)[12:].lower())
                           for s in job.record.stages)
        state = bus_pb2.JobState.Name(job.record.state)[10:].lower()
        print("revision %d  %3.0f%%  %s  [%s]" % (job.revision, 100 * job.progress, state, stages))
        final = job
        if job.record.state in (bus_pb2.JOB_STATE_SUCCEEDED, bus_pb2.JOB_STATE_FAILED,
                                bus_pb2.JOB_STATE_CANCELLED):
            break
    if final is None or final.record.state != bus_pb2.JOB_STATE_SUCCEEDED:
        error = final.record.error.message if final is not None else "no update"
        print("job did not succeed:", error)
        return 1

    os.makedirs(args.out, exist_ok=True)
    for stage in final.record.stages:
        chunks = stub.DownloadResult(
            gateway_pb2.DownloadResultRequest(job_id=submitted.job_id, stage=stage.name),
            timeout=60)
        payload, content_type = b"", ""
        for chunk in chunks:
            payload += chunk.data
            content_type = chunk.content_type or content_type
        message = symbols.GetSymbol(content_type.split("/")[-1])()
        message.ParseFromString(payload)
        files = write_images(message, stage.name, args.out, [])
        print("stage %s: %s -> %s" % (stage.name, message.DESCRIPTOR.name, ", ".join(files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
