#!/bin/sh
# Rebuild the committed bindings after editing service_protocol.proto; run from the repository root.
exec "${PYTHON:-.venv/bin/python}" -m grpc_tools.protoc -I engine/protocol --python_out=engine/protocol --pyi_out=engine/protocol engine/protocol/service_protocol.proto
