"""trackd/server/interceptors.py against a real grpc.aio server: a unary method's handler is
wrapped once and its wrapper runs on every call; streaming and unknown methods pass by."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from trackd.server.interceptors import UnaryInterceptor, unary_handler

CHECK = "/grpc.health.v1.Health/Check"


class Counting(UnaryInterceptor):
    def __init__(self) -> None:
        super().__init__()
        self.wrapped: list[str] = []
        self.calls = 0

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        self.wrapped.append(method)
        inner = handler.unary_unary

        async def counted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            self.calls += 1
            return await inner(request, context)

        return unary_handler(counted, handler)


async def test_a_method_is_wrapped_once_and_its_wrapper_runs_on_every_call() -> None:
    interceptor = Counting()
    server = grpc.aio.server(interceptors=[interceptor])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await servicer.set("svc", health_pb2.HealthCheckResponse.SERVING)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(3):
                answer = await stub.Check(health_pb2.HealthCheckRequest(service="svc"))
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
            watch = stub.Watch(health_pb2.HealthCheckRequest(service="svc"))
            first = await watch.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
            unknown = channel.unary_unary("/no.Such/Method")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await unknown(b"")
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)
    assert interceptor.wrapped == [CHECK]
    assert interceptor.calls == 3
