"""The RBAC gate: a ``grpc.aio`` server interceptor that decides every RPC, unary and
streaming alike, before its body runs, and audits the decision with the result code.

The identity comes from the connection (:meth:`TlsListener.identity` for a relayed
TLS client, the local identity for the unix socket); the target playbook from the
request: ``ApplyPlaybook`` the parsed playbook's ``name``, ``RemovePlaybook`` and
``ListWorkloads``/``StreamEvents`` their ``playbook`` field, workload RPCs their
``PLAYBOOK/WORKLOAD`` (or unique ``WORKLOAD``) resolved as the daemon does. A role
limited to playbook globs that lists or streams "all" gets only its playbooks'
workloads and events. PERMISSION_DENIED names the method and the identity, nothing of
the policy.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from gxo.daemon.security.identity import Identity
from gxo.daemon.security.rbac import Decision, Policy, Role

__all__ = ["CALLER", "Call", "RbacInterceptor"]

log = logging.getLogger("gxo.daemon.rbac")

# How a request names its workload (resolved to its playbook) or its playbook.
_WORKLOAD_FIELD = "name"
_PLAYBOOK_FIELD = "playbook"


@dataclass
class Call:
    """The RPC being served, for its body (``CALLER.get()``): who calls, under which
    policy, and what the body adds to the call's audit line (a resume's payload...)."""

    identity: Identity
    policy: Policy
    audit: dict[str, Any] = field(default_factory=dict)

    def may(self, method: str, playbook: str) -> bool:
        return self.policy.decide(self.identity, method, playbook).allowed

    def aliases(self) -> frozenset[str]:
        """What an ``approvers`` list may name this caller by: name, CN, role names."""
        names = {self.identity.name, *(r.name for r in self.policy.roles_of(self.identity))}
        if self.identity.cn:
            names.add(self.identity.cn)
        return frozenset(names)


# Set by the interceptor before an RPC's body runs (same task: the body sees it).
CALLER: contextvars.ContextVar[Call | None] = contextvars.ContextVar("gxo_caller", default=None)


def _playbook_name(source: str) -> str:
    """The ``name`` of a playbook text ("" when it does not parse to one)."""
    from gxo.config.yamlsafe import parse_yaml
    from gxo.errors import GxoError

    try:
        data, _ = parse_yaml(source, "<apply>")
    except (GxoError, ValueError, RecursionError):
        return ""
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else ""


class RbacInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        policy: Policy,
        resolve: Callable[[str], tuple[str, str]],
        identify: Callable[[str], Identity | None],
        audit: Any = None,
    ) -> None:
        """``resolve(ref)`` → (playbook, workload), raising when unknown or ambiguous;
        ``identify(peer)`` → the relayed TLS client's identity, or None (unix socket)."""
        self.policy = policy
        self.resolve = resolve
        self.identify = identify
        self.audit = audit
        self.local = Identity(policy.local_identity, "unix")

    def identity(self, context: grpc.aio.ServicerContext) -> Identity:
        return self.identify(context.peer()) or self.local

    async def target(self, method: str, request: Any, identity: Identity) -> tuple[str | None, str]:
        """(the playbook RBAC checks — None for "all", "" when unknown; the audit's target)."""
        if method == "ApplyPlaybook":
            if self.policy.decide(identity, method, None) == Decision(True):
                # a role allowed on every playbook: no glob to match, so the daemon
                # parses the text only once, and the audit takes the name from its reply
                return None, ""
            name = await asyncio.to_thread(_playbook_name, request.source)
            return name, name
        fields = {f.name for f in request.DESCRIPTOR.fields}
        if _WORKLOAD_FIELD in fields:
            ref = getattr(request, _WORKLOAD_FIELD)
            try:
                playbook, workload = self.resolve(ref)
            except Exception:  # unknown or ambiguous: no playbook can be vouched for
                return "", ref
            return playbook, f"{playbook}/{workload}"
        if _PLAYBOOK_FIELD in fields:
            playbook = getattr(request, _PLAYBOOK_FIELD)
            workload = getattr(request, "workload", "") if "workload" in fields else ""
            if playbook:
                return playbook, f"{playbook}/{workload}" if workload else playbook
            return None, workload  # every playbook: a limited role's answer is narrowed
        return None, ""

    async def _decide(
        self, method: str, request: Any, context: grpc.aio.ServicerContext
    ) -> tuple[Identity, str, tuple[str, ...] | None]:
        identity = self.identity(context)
        playbook, target = await self.target(method, request, identity)
        decision = self.policy.decide(identity, method, playbook)
        if not decision.allowed:
            if identity.transport != "probe":  # not the TLS relay's start-up self-check
                log.info("denied %s to %s (%s)", method, identity.name, identity.transport)
                await self._audit(identity, method, target, False, "PERMISSION_DENIED")
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"permission denied: {identity.name} may not call {method}",
            )
        return identity, target, decision.scope

    async def _audit(
        self,
        identity: Identity,
        method: str,
        target: str,
        allowed: bool,
        code: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if self.audit is not None:
            await self.audit.record(identity, method, target, allowed, code, **(extra or {}))

    @staticmethod
    def _code(context: grpc.aio.ServicerContext, exc: BaseException | None) -> str:
        code = context.code()
        if isinstance(code, grpc.StatusCode):
            return code.name
        if isinstance(exc, asyncio.CancelledError):
            return "CANCELLED"
        return "UNKNOWN" if exc is not None else "OK"

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        if handler.unary_unary is not None:
            return self._unary(method, handler)
        if handler.unary_stream is not None:
            return self._server_stream(method, handler)
        return self._refused(method, handler)  # no client-streaming RPC is checkable here

    def _unary(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        body = handler.unary_unary

        async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
            identity, target, scope = await self._decide(method, request, context)
            call = Call(identity, self.policy)
            CALLER.set(call)
            error: BaseException | None = None
            try:
                reply = await body(request, context)
                if scope is not None:
                    reply = _narrow(reply, scope)
                if not target and reply.DESCRIPTOR.name == "ApplyPlaybookResponse":
                    target = reply.playbook
                return reply
            except BaseException as exc:
                error = exc
                raise
            finally:
                target = call.audit.pop("target", None) or target
                code = self._code(context, error)
                await self._audit(identity, method, target, True, code, call.audit)

        return grpc.unary_unary_rpc_method_handler(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _server_stream(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        body = handler.unary_stream

        async def checked(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            identity, target, scope = await self._decide(method, request, context)
            CALLER.set(Call(identity, self.policy))
            error: BaseException | None = None
            try:
                async for message in body(request, context):
                    if scope is None or _in_scope(message, scope):
                        yield message
            except BaseException as exc:
                error = exc
                raise
            finally:
                await asyncio.shield(
                    self._audit(identity, method, target, True, self._code(context, error))
                )

        return grpc.unary_stream_rpc_method_handler(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _refused(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        async def refused(request: Any, context: grpc.aio.ServicerContext) -> Any:
            identity = self.identity(context)
            await self._audit(identity, method, "", False, "PERMISSION_DENIED")
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"permission denied: {identity.name} may not call {method}",
            )

        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                refused, handler.request_deserializer, handler.response_serializer
            )
        return grpc.stream_stream_rpc_method_handler(
            refused, handler.request_deserializer, handler.response_serializer
        )


def _in_scope(message: Any, scope: tuple[str, ...]) -> bool:
    playbook = getattr(message, "playbook", "")
    return Role("scope", frozenset(), scope).covers(playbook)


def _narrow(reply: Any, scope: tuple[str, ...]) -> Any:
    """A list answer keeps only the entries of the role's playbooks."""
    if reply.DESCRIPTOR.name == "ListWorkloadsResponse":
        keep = [w for w in reply.workloads if _in_scope(w, scope)]
        del reply.workloads[:]
        reply.workloads.extend(keep)
    return reply
