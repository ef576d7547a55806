#!/usr/bin/env python3
"""Second-opinion end-to-end check of a Model Registry server, from Python's gRPC stack.

Usage:
    /usr/bin/python3 registry_check.py ADDRESS PROTO_DIR TMP_DIR
    /usr/bin/python3 registry_check.py --check-deps
    /usr/bin/python3 registry_check.py --follow-until-end ADDRESS PROTO_DIR TMP_DIR MODEL_ID

ADDRESS is host:port of a running server whose registry is EMPTY (the check asserts exact
listings). PROTO_DIR holds cogment/api/model_registry.proto and common.proto. TMP_DIR is a
scratch directory that the caller owns and removes: the only place this script writes.

Nothing is generated into the source tree: protoc (grpc_tools' bundled one, or a `protoc`
on PATH) writes a FileDescriptorSet into TMP_DIR; message classes are built from it with
google.protobuf's descriptor_pool / message_factory, and every method is called through
grpcio's generic channel.unary_unary / unary_stream / stream_unary with the path
/cogmentAPI.ModelRegistrySP/<Method>. (grpc_tools 1.14's generated _pb2 modules use the
deprecated "create descriptors directly" API; they happen to load with the C++ backend of
python3-protobuf 4.21 but not with newer protobuf runtimes, so they are not used.)

On success prints one JSON object (the observed results) on stdout and exits 0. On any
mismatch prints "registry_check: FAIL: ..." on stderr and exits 1; missing Python packages
exit 3 (see --check-deps).

--follow-until-end opens VersionUpdate on MODEL_ID (which must have a version), prints
{"followed": N} once the first update arrived, then {"code": ..., "details": ...}: how the
stream ended (the caller stops the server meanwhile).
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

SERVICE = "cogmentAPI.ModelRegistrySP"
CHUNK_DATA = [b"chunk_1", b"chunk_2"]
CHUNK_HASH = "jY0g3VkUK62ILPr2JuaW5g7uQi0EcJVZJu8IYp3yfhI="
BIG_SIZE = 3 * 1024 * 1024 + 5  # ~3 MiB; not a multiple of any chunk size
BIG_BODY = 1024 * 1024  # bytes per CreateVersion body for the big version
CALL_TIMEOUT = 30.0  # seconds, every RPC (a hang fails instead of blocking forever)
CONNECT_TIMEOUT = 10.0  # seconds
# Model ids the original accepts (it stores each as a directory name), and ids no server can store.
NAMES = ["my model", "agent:v1", "a+b", "modèle", "a@b", "#1 = 100%, ok", "\U0001F600 emoji", "\uFF61", "é" * 121]
MODEL_ID_RULE = (
    "expected 1 to 242 bytes of UTF-8, not starting with '.', without '/', '\\' or control characters (U+0000 to U+001F, U+007F)"
)
REFUSED_NAMES = [
    ("", '""', "it is empty"),
    ("..", '".."', 'it is ".."'),
    (".hidden", '".hidden"', "it starts with '.' (reserved for the registry's own files)"),
    ("a/b", '"a/b"', "it contains '/'"),
    ("a\\b", '"a\\\\b"', "it contains '\\'"),
    ("line\nbreak", '"line\\nbreak"', "it contains the control character U+000A"),
    ("é" * 122, '"' + "é" * 64 + '"… (244 bytes of UTF-8)', "it is 244 bytes of UTF-8, more than 242"),
]
EXPECTED_SHAPES = {  # method -> (client_streaming, server_streaming), from the wire contract
    "CreateOrUpdateModel": (False, False),
    "DeleteModel": (False, False),
    "RetrieveModels": (False, False),
    "CreateVersion": (True, False),
    "RetrieveVersionInfos": (False, False),
    "RetrieveVersionData": (False, True),
    "VersionUpdate": (False, True),
    "Version": (False, False),
    "Status": (False, False),
}


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def check_equal(actual, expected, what):
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def missing_dependencies():
    """Returns a list of what is missing to run the check (empty when all is there)."""
    missing = []
    for module, package in (("grpc", "python3-grpcio"), ("google.protobuf", "python3-protobuf")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{package} (python module {module})")
    if not _has_grpc_tools() and shutil.which("protoc") is None:
        missing.append("python3-grpc-tools (python module grpc_tools) or a protoc binary")
    return missing


def _has_grpc_tools():
    try:
        import importlib.util

        return importlib.util.find_spec("grpc_tools") is not None
    except ImportError:
        return False


# ---------------------------------------------------------------------------------------
# Protocol: descriptor set -> message classes and generic method callables


def compile_descriptor_set(proto_dir, tmp_dir):
    out = os.path.join(tmp_dir, "model_registry.fds")
    files = ["cogment/api/common.proto", "cogment/api/model_registry.proto"]
    for name in files:
        check(os.path.isfile(os.path.join(proto_dir, name)), f"{name} not found under {proto_dir}")
    args = [f"-I{proto_dir}", f"--descriptor_set_out={out}", "--include_imports", *files]
    if _has_grpc_tools():
        command = [sys.executable, "-m", "grpc_tools.protoc", *args]
    else:
        command = [shutil.which("protoc"), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    check(done.returncode == 0, f"protoc failed ({' '.join(command)}): {done.stderr.strip()}")
    with open(out, "rb") as f:
        return f.read()


class Protocol:
    def __init__(self, descriptor_set_bytes):
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        file_set = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set_bytes)
        self.pool = descriptor_pool.DescriptorPool()
        for file_proto in file_set.file:
            self.pool.Add(file_proto)
        get_class = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
        if get_class is None:
            get_class = message_factory.MessageFactory(self.pool).GetPrototype
        self._get_class = get_class
        # Streaming shapes come from the MethodDescriptorProtos (MethodDescriptor only has
        # client_streaming/server_streaming attributes in recent protobuf releases).
        self.methods = {}
        package, service_name = SERVICE.rsplit(".", 1)
        for file_proto in file_set.file:
            for service in file_proto.service:
                if file_proto.package == package and service.name == service_name:
                    for method in service.method:
                        self.methods[method.name] = method
        check_equal(
            {name: (m.client_streaming, m.server_streaming) for name, m in self.methods.items()},
            EXPECTED_SHAPES,
            f"{SERVICE} methods (client_streaming, server_streaming)",
        )

    def message(self, full_name):
        return self._get_class(self.pool.FindMessageTypeByName(full_name))

    def __getattr__(self, name):
        # protocol.CreateOrUpdateModelRequest etc.; nested types as "Outer.Inner" via message().
        if name.startswith("_") or name in ("pool", "methods"):
            raise AttributeError(name)
        return self.message(f"cogmentAPI.{name}")

    def stub(self, channel):
        calls = {}
        for name, method in self.methods.items():
            request = self.message(method.input_type.lstrip("."))
            reply = self.message(method.output_type.lstrip("."))
            if method.client_streaming and method.server_streaming:
                factory = channel.stream_stream
            elif method.client_streaming:
                factory = channel.stream_unary
            elif method.server_streaming:
                factory = channel.unary_stream
            else:
                factory = channel.unary_unary
            calls[name] = factory(
                f"/{SERVICE}/{name}",
                request_serializer=request.SerializeToString,
                response_deserializer=reply.FromString,
            )
        return calls


# ---------------------------------------------------------------------------------------
# Helpers


def version_dict(info):
    return {
        "model_id": info.model_id,
        "version_number": info.version_number,
        "creation_timestamp": str(info.creation_timestamp),
        "archived": info.archived,
        "data_hash": info.data_hash,
        "data_size": str(info.data_size),
        "user_data": dict(sorted(info.user_data.items())),
    }


def model_dict(info):
    return {"model_id": info.model_id, "user_data": dict(sorted(info.user_data.items()))}


def b64_sha256(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def end_of_stream(grpc, stream):
    """Reads a server stream to its end: its status, or what came instead."""
    try:
        message = next(stream)
        return {"code": "another message", "details": str(message)}
    except grpc.RpcError as error:
        return {"code": error.code().name, "details": error.details()}
    except StopIteration:
        return {"code": "OK", "details": ""}


def follow_until_end(address, proto_dir, tmp_dir, model_id):
    """VersionUpdate on model_id: prints the first version number as a JSON line, then how the stream ended."""
    import grpc

    protocol = Protocol(compile_descriptor_set(proto_dir, tmp_dir))
    channel = grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)])
    try:
        grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT)
        updates = protocol.stub(channel)["VersionUpdate"](protocol.VersionUpdateRequest(model_id=model_id), timeout=CALL_TIMEOUT)
        first = next(updates).version_info
        print(json.dumps({"followed": first.version_number}), flush=True)
        print(json.dumps(end_of_stream(grpc, updates), sort_keys=True), flush=True)
    finally:
        channel.close()
    return 0


def expect_rpc_error(grpc, call, expected_code, expected_details, what):
    try:
        call()
    except grpc.RpcError as error:
        check_equal(error.code(), expected_code, f"{what}: status code")
        check_equal(error.details(), expected_details, f"{what}: details")
        return {"code": error.code().name, "details": error.details()}
    raise CheckFailed(f"{what}: expected {expected_code.name}, the call succeeded")


# ---------------------------------------------------------------------------------------
# The check


def run(address, proto_dir, tmp_dir):
    import grpc

    protocol = Protocol(compile_descriptor_set(proto_dir, tmp_dir))
    P = protocol
    Header = P.message("cogmentAPI.CreateVersionRequestChunk.Header")
    Body = P.message("cogmentAPI.CreateVersionRequestChunk.Body")
    results = {}

    # Never route 127.0.0.1 through an http_proxy a CI machine might set.
    channel = grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)])
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT)
        except grpc.FutureTimeoutError:
            raise CheckFailed(f"could not connect to {address} within {CONNECT_TIMEOUT:g} s") from None
        rpc = protocol.stub(channel)

        def call(name, request):
            return rpc[name](request, timeout=CALL_TIMEOUT)

        def version_chunks(header_info, bodies):
            yield P.CreateVersionRequestChunk(header=Header(version_info=header_info))
            for body in bodies:
                yield P.CreateVersionRequestChunk(body=Body(data_chunk=body))

        # --- models ---------------------------------------------------------------------
        model_id, other_id = "py-model", "py-other"
        user_data = {"owner": "python", "stack": "grpcio"}
        reply = call("CreateOrUpdateModel", P.CreateOrUpdateModelRequest(model_info=P.ModelInfo(model_id=model_id, user_data=user_data)))
        check_equal(reply.ByteSize(), 0, "CreateOrUpdateModelReply is empty")
        call("CreateOrUpdateModel", P.CreateOrUpdateModelRequest(model_info=P.ModelInfo(model_id=other_id)))

        by_id = call("RetrieveModels", P.RetrieveModelsRequest(model_ids=[model_id]))
        results["retrieve_models_by_id"] = {
            "model_infos": [model_dict(m) for m in by_id.model_infos],
            "next_model_handle": by_id.next_model_handle,
        }
        check_equal(results["retrieve_models_by_id"]["model_infos"], [{"model_id": model_id, "user_data": user_data}], "RetrieveModels by id")
        check_equal(by_id.next_model_handle, "1", "RetrieveModels by id: next_model_handle")

        listing = call("RetrieveModels", P.RetrieveModelsRequest())
        page1 = call("RetrieveModels", P.RetrieveModelsRequest(models_count=1))
        page2 = call("RetrieveModels", P.RetrieveModelsRequest(models_count=1, model_handle=page1.next_model_handle))
        page3 = call("RetrieveModels", P.RetrieveModelsRequest(models_count=1, model_handle=page2.next_model_handle))
        results["retrieve_models_listing"] = {
            "all": [m.model_id for m in listing.model_infos],
            "all_next_model_handle": listing.next_model_handle,
            "pages": [[[m.model_id for m in p.model_infos], p.next_model_handle] for p in (page1, page2, page3)],
        }
        check_equal(results["retrieve_models_listing"]["all"], [model_id, other_id], "RetrieveModels listing (the registry must start empty)")
        check_equal(listing.next_model_handle, "2", "RetrieveModels listing: next_model_handle")
        check_equal(
            results["retrieve_models_listing"]["pages"],
            [[[model_id], "1"], [[other_id], "2"], [[], "2"]],
            "RetrieveModels pages of 1",
        )

        # --- CreateVersion (client stream) ----------------------------------------------
        check_equal(b64_sha256(b"".join(CHUNK_DATA)), CHUNK_HASH, "hashlib's SHA-256 of chunk_1chunk_2")
        before_ns = time.time_ns()
        created = call(
            "CreateVersion",
            version_chunks(
                P.ModelVersionInfo(model_id=model_id, data_size=14, version_number=42, user_data={"step": "1"}),
                CHUNK_DATA,
            ),
        ).version_info
        after_ns = time.time_ns()
        v1 = version_dict(created)
        results["create_version_small"] = v1
        check_equal(
            {k: v for k, v in v1.items() if k != "creation_timestamp"},
            {"model_id": model_id, "version_number": 1, "archived": False, "data_hash": CHUNK_HASH, "data_size": "14", "user_data": {"step": "1"}},
            "CreateVersion chunk_1chunk_2",
        )
        check(
            before_ns - 1_000_000 <= created.creation_timestamp <= after_ns + 1_000_000,
            f"creation_timestamp {created.creation_timestamp} not within [{before_ns}, {after_ns}] ns",
        )

        big = os.urandom(BIG_SIZE)
        with open(os.path.join(tmp_dir, "big_version.bin"), "wb") as f:  # lets the caller check independently
            f.write(big)
        bodies = [big[i : i + BIG_BODY] for i in range(0, len(big), BIG_BODY)]
        big_info = call(
            "CreateVersion",
            version_chunks(P.ModelVersionInfo(model_id=model_id, data_size=len(big), archived=True, user_data={"size": "big"}), bodies),
        ).version_info
        v2 = version_dict(big_info)
        results["create_version_big"] = {**v2, "bodies_sent": len(bodies)}
        check_equal(
            {k: v for k, v in v2.items() if k != "creation_timestamp"},
            {"model_id": model_id, "version_number": 2, "archived": True, "data_hash": b64_sha256(big), "data_size": str(BIG_SIZE), "user_data": {"size": "big"}},
            "CreateVersion big archived version",
        )

        # --- RetrieveVersionInfos -------------------------------------------------------
        latest = call("RetrieveVersionInfos", P.RetrieveVersionInfosRequest(model_id=model_id, version_numbers=[-1]))
        results["retrieve_version_infos_latest"] = {
            "version_infos": [version_dict(v) for v in latest.version_infos],
            "next_version_handle": latest.next_version_handle,
        }
        check_equal(results["retrieve_version_infos_latest"]["version_infos"], [v2], "RetrieveVersionInfos [-1]")

        all_versions = call("RetrieveVersionInfos", P.RetrieveVersionInfosRequest(model_id=model_id))
        pages = []
        handle = ""
        for _ in range(3):
            page = call("RetrieveVersionInfos", P.RetrieveVersionInfosRequest(model_id=model_id, versions_count=1, version_handle=handle))
            pages.append([[v.version_number for v in page.version_infos], page.next_version_handle])
            handle = page.next_version_handle
        results["retrieve_version_infos_listing"] = {
            "all": [version_dict(v) for v in all_versions.version_infos],
            "all_next_version_handle": all_versions.next_version_handle,
            "pages": pages,
        }
        check_equal(results["retrieve_version_infos_listing"]["all"], [v1, v2], "RetrieveVersionInfos listing")
        check_equal(all_versions.next_version_handle, "3", "RetrieveVersionInfos listing: next_version_handle")
        check_equal(pages, [[[1], "2"], [[2], "3"], [[], "3"]], "RetrieveVersionInfos pages of 1")

        # --- RetrieveVersionData (server stream) ----------------------------------------
        def retrieve(number):
            request = P.RetrieveVersionDataRequest(model_id=model_id, version_number=number)
            return [chunk.data_chunk for chunk in rpc["RetrieveVersionData"](request, timeout=CALL_TIMEOUT)]

        small_chunks = retrieve(1)
        big_chunks = retrieve(2)
        big_back = b"".join(big_chunks)
        results["retrieve_version_data"] = {
            "small": b"".join(small_chunks).decode("latin-1"),
            "small_chunk_sizes": [len(c) for c in small_chunks],
            "big_chunk_sizes": [len(c) for c in big_chunks],
            "big_size": len(big_back),
            "big_sha256": b64_sha256(big_back),
            "big_equal": big_back == big,
        }
        check_equal(b"".join(small_chunks), b"chunk_1chunk_2", "RetrieveVersionData version 1")
        check_equal(len(big_back), len(big), "RetrieveVersionData version 2: size")
        check(big_back == big, "RetrieveVersionData version 2: the bytes differ from what was uploaded")
        check_equal(b64_sha256(big_back), v2["data_hash"], "RetrieveVersionData version 2: SHA-256 vs data_hash")

        # --- errors ---------------------------------------------------------------------
        results["not_found"] = expect_rpc_error(
            grpc,
            lambda: call("RetrieveModels", P.RetrieveModelsRequest(model_ids=["py-missing"])),
            grpc.StatusCode.NOT_FOUND,
            'model "py-missing" not found',
            "RetrieveModels unknown model",
        )
        results["invalid_argument"] = expect_rpc_error(
            grpc,
            lambda: rpc["CreateVersion"](iter([P.CreateVersionRequestChunk(body=Body(data_chunk=b"x"))]), timeout=CALL_TIMEOUT),
            grpc.StatusCode.INVALID_ARGUMENT,
            "CreateVersionRequestChunk: the first message must be a header, a body was received",
            "CreateVersion starting with a body",
        )

        # --- VersionUpdate (server stream) ----------------------------------------------
        def status(names):
            return dict(call("Status", P.StatusRequest(names=names)).statuses)

        updates = rpc["VersionUpdate"](P.VersionUpdateRequest(model_id=model_id), timeout=CALL_TIMEOUT)
        first_update = version_dict(next(updates).version_info)
        subscribers_while_open = status(["subscribers"])["subscribers"]
        published = call(
            "CreateVersion",
            version_chunks(P.ModelVersionInfo(model_id=model_id, data_size=6), [b"upd", b"ate"]),
        ).version_info
        second_update = version_dict(next(updates).version_info)
        updates.cancel()
        try:
            next(updates)
            ended_with = "another message"
        except grpc.RpcError as error:
            ended_with = error.code().name
        except StopIteration:
            ended_with = "end of stream"
        deadline = time.monotonic() + 5
        while status(["subscribers"])["subscribers"] != "0" and time.monotonic() < deadline:
            time.sleep(0.01)
        results["version_update"] = {
            "first": first_update,
            "second": second_update,
            "subscribers_while_open": subscribers_while_open,
            "after_cancel": ended_with,
            "subscribers_after_cancel": status(["subscribers"])["subscribers"],
        }
        check_equal(first_update, v2, "VersionUpdate: first message is the latest version")
        check_equal(second_update, version_dict(published), "VersionUpdate: second message is the version published meanwhile")
        check_equal(second_update["version_number"], 3, "VersionUpdate: published version number")
        check_equal(second_update["data_hash"], b64_sha256(b"update"), "VersionUpdate: published data_hash")
        check_equal(subscribers_while_open, "1", "Status subscribers while VersionUpdate is open")
        check_equal(ended_with, "CANCELLED", "VersionUpdate after cancel()")
        check_equal(results["version_update"]["subscribers_after_cancel"], "0", "Status subscribers after cancel")

        # --- Version and Status ---------------------------------------------------------
        version = call("Version", P.VersionRequest())
        results["version"] = [{"name": v.name, "version": v.version} for v in version.versions]
        check(len(results["version"]) >= 1, "Version: no versions")
        check_equal(results["version"][0]["name"], "model_registry", "Version: first name")

        statuses = status(["*"])
        results["status_all"] = {
            "keys": sorted(statuses),
            "models": statuses.get("models"),
            "subscribers": statuses.get("subscribers"),
            "uploads_in_flight": statuses.get("uploads_in_flight"),
            "overall_load": statuses.get("overall_load"),
        }
        results["status_named"] = status(["models", "no_such_key"])
        check_equal(statuses.get("models"), "2", "Status models")
        check_equal(results["status_named"], {"models": "2"}, "Status [models, no_such_key]")

        # --- DeleteModel ----------------------------------------------------------------
        following = rpc["VersionUpdate"](P.VersionUpdateRequest(model_id=model_id), timeout=CALL_TIMEOUT)
        followed = version_dict(next(following).version_info)
        reply = call("DeleteModel", P.DeleteModelRequest(model_id=model_id))
        check_equal(reply.ByteSize(), 0, "DeleteModelReply is empty")
        results["version_update_on_delete"] = {"followed": followed["version_number"], **end_of_stream(grpc, following)}
        check_equal(results["version_update_on_delete"]["code"], "NOT_FOUND", "VersionUpdate after DeleteModel: status code")
        results["deleted_retrieve"] = expect_rpc_error(
            grpc,
            lambda: call("RetrieveVersionInfos", P.RetrieveVersionInfosRequest(model_id=model_id)),
            grpc.StatusCode.NOT_FOUND,
            f'model "{model_id}" not found',
            "RetrieveVersionInfos after DeleteModel",
        )
        results["deleted_again"] = expect_rpc_error(
            grpc,
            lambda: call("DeleteModel", P.DeleteModelRequest(model_id=model_id)),
            grpc.StatusCode.NOT_FOUND,
            f'model "{model_id}" not found',
            "DeleteModel twice",
        )
        after_delete = call("RetrieveModels", P.RetrieveModelsRequest())
        results["models_after_delete"] = [m.model_id for m in after_delete.model_infos]
        check_equal(results["models_after_delete"], [other_id], "RetrieveModels after DeleteModel")
        call("DeleteModel", P.DeleteModelRequest(model_id=other_id))
        results["models_at_end"] = [m.model_id for m in call("RetrieveModels", P.RetrieveModelsRequest()).model_infos]
        check_equal(results["models_at_end"], [], "RetrieveModels at the end")

        # --- model ids: every RPC, transient and archived; refused ids -----------------
        names = {}
        for name in NAMES:
            call("CreateOrUpdateModel", P.CreateOrUpdateModelRequest(model_info=P.ModelInfo(model_id=name, user_data={"name": name})))
            data = ("archived " + name).encode("utf-8")
            archived = call(
                "CreateVersion",
                version_chunks(P.ModelVersionInfo(model_id=name, data_size=len(data), archived=True), [data]),
            ).version_info
            transient = call(
                "CreateVersion",
                version_chunks(P.ModelVersionInfo(model_id=name, data_size=5), [b"trans"]),
            ).version_info
            by_id = call("RetrieveModels", P.RetrieveModelsRequest(model_ids=[name]))
            infos = call("RetrieveVersionInfos", P.RetrieveVersionInfosRequest(model_id=name))
            back = b"".join(
                c.data_chunk
                for c in rpc["RetrieveVersionData"](P.RetrieveVersionDataRequest(model_id=name, version_number=1), timeout=CALL_TIMEOUT)
            )
            updates = rpc["VersionUpdate"](P.VersionUpdateRequest(model_id=name), timeout=CALL_TIMEOUT)
            latest = next(updates).version_info
            updates.cancel()
            names[name] = {
                "model": [model_dict(m) for m in by_id.model_infos],
                "versions": [[v.model_id, v.version_number, v.archived] for v in infos.version_infos],
                "data_equal": back == data,
                "data_hash_equal": archived.data_hash == b64_sha256(data),
                "latest": [latest.model_id, latest.version_number, transient.version_number],
            }
            check_equal(names[name]["model"], [{"model_id": name, "user_data": {"name": name}}], f"RetrieveModels {name!r}")
            check_equal(names[name]["versions"], [[name, 1, True], [name, 2, False]], f"RetrieveVersionInfos {name!r}")
            check(back == data, f"RetrieveVersionData {name!r}: the bytes differ")
            check_equal(names[name]["latest"], [name, 2, 2], f"VersionUpdate {name!r}")
        listed = [m.model_id for m in call("RetrieveModels", P.RetrieveModelsRequest()).model_infos]
        # Python compares str by code point: the byte order of UTF-8, as Go (the original) does.
        check_equal(listed, sorted(NAMES), "RetrieveModels listing of the names, in UTF-8 byte order")
        refused = []
        for name, shown, problem in REFUSED_NAMES:
            refused.append(
                expect_rpc_error(
                    grpc,
                    lambda name=name: call("CreateOrUpdateModel", P.CreateOrUpdateModelRequest(model_info=P.ModelInfo(model_id=name))),
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"model_info.model_id {shown} is invalid: {problem}; {MODEL_ID_RULE}",
                    f"CreateOrUpdateModel {name!r}",
                )
            )
            expect_rpc_error(
                grpc,
                lambda name=name: call("RetrieveVersionInfos", P.RetrieveVersionInfosRequest(model_id=name)),
                grpc.StatusCode.INVALID_ARGUMENT,
                f"model_id {shown} is invalid: {problem}; {MODEL_ID_RULE}",
                f"RetrieveVersionInfos {name!r}",
            )
        for name in NAMES:
            call("DeleteModel", P.DeleteModelRequest(model_id=name))
        results["names"] = {
            "listed": listed,
            "all_ok": all(n["data_equal"] and n["data_hash_equal"] for n in names.values()),
            "refused": refused,
            "after_delete": [m.model_id for m in call("RetrieveModels", P.RetrieveModelsRequest()).model_infos],
        }
        check_equal(results["names"]["after_delete"], [], "RetrieveModels after deleting the names")
    finally:
        channel.close()

    from google.protobuf import __version__ as protobuf_version
    from google.protobuf.internal import api_implementation

    results["python_stack"] = {
        "python": sys.version.split()[0],
        "grpcio": grpc.__version__,
        "protobuf": protobuf_version,
        "protobuf_backend": api_implementation.Type(),
        "protoc": "grpc_tools" if _has_grpc_tools() else "protoc",
    }
    return results


def main(argv):
    if argv[1:] == ["--check-deps"]:
        missing = missing_dependencies()
        if missing:
            print("missing: " + ", ".join(missing))
            return 3
        print("ok")
        return 0
    if len(argv) == 6 and argv[1] == "--follow-until-end":
        return follow_until_end(*argv[2:])
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    missing = missing_dependencies()
    if missing:
        print(f"registry_check: missing {', '.join(missing)}; run test/python/install-deps.sh", file=sys.stderr)
        return 3
    address, proto_dir, tmp_dir = argv[1:]
    import grpc

    try:
        results = run(address, proto_dir, tmp_dir)
    except CheckFailed as failure:
        print(f"registry_check: FAIL: {failure}", file=sys.stderr)
        return 1
    except grpc.RpcError as error:
        code = error.code() if hasattr(error, "code") else None
        details = error.details() if hasattr(error, "details") else str(error)
        print(f"registry_check: FAIL: unexpected gRPC error {code}: {details}", file=sys.stderr)
        return 1
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
