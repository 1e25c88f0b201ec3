"""The base of the server's interceptors: each unary method's handler wrapped once.

grpc.aio runs every interceptor's ``intercept_service`` for every call. An interceptor
that built its wrapper there (a closure and a new ``RpcMethodHandler``) paid for it on
every call, and each of trackd's three repeated the same preamble. A
:class:`UnaryInterceptor` builds its wrapper of a method's handler the first time the
method is called (:meth:`UnaryInterceptor.wrap`) and hands the same one out from then on.
Streaming methods (health Watch, reflection) pass through unwrapped, and so do unknown
methods (grpc answers UNIMPLEMENTED; nothing is kept for a name a client made up).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]


class UnaryInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Wraps each unary-unary method's handler once; subclasses say how in :meth:`wrap`."""

    def __init__(self) -> None:
        # By full method name: the handler wrapped and its wrapper. The handler a method
        # resolves to is fixed once the server runs; it is compared anyway, so a wrapper
        # never outlives what it wraps.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = handler_call_details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = self._wrapped[method] = (handler, self.wrap(method, handler))
        return known[1]

    @abstractmethod
    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler to run instead of ``handler`` for ``method`` (``/pkg.Service/Name``)."""


def unary_handler(behaviour: Handler, like: grpc.RpcMethodHandler, *,
                  deserializer: bool = True) -> grpc.RpcMethodHandler:
    """A unary handler running ``behaviour``, with ``like``'s serializers (or, when
    ``deserializer`` is false, none for the request: ``behaviour`` decodes it)."""
    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=like.request_deserializer if deserializer else None,
        response_serializer=like.response_serializer,
    )
