"""The Kubernetes API emulator: an aiohttp server on 127.0.0.1 that speaks enough of the API for
the real kopf, the real kubectl and the real ``kubernetes`` client.

Written directly on aiohttp rather than as a ``kmock`` subclass: kmock's value is its request-
matching DSL for mocks, but nearly every verb (storage, resourceVersion, watch history,
selectors, patch types, subresources, tables) had to be replaced, and its request log keeps
every request forever. Here routing is one function; state lives in ``store.Store``.

Use it from tests as a context manager (it serves from its own thread)::

    with ApiServer() as api:
        write_kubeconfig(path, api.url)
        api.faults.fail("PATCH", r"/jobs/", status=500)
        api.requests.count(verb="patch", resource="jobs")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import yaml

from tests.harness import apply, discovery, gc, logs, openapi, patches, protobuf, scale, tables
from tests.harness.faults import FaultInjector, RequestLog, RequestRecord
from tests.harness.proxy import Proxy
from tests.harness.resources import ResourceType
from tests.harness.selection import SelectorError, parse_field_selector, parse_label_selector
from tests.harness.store import ApiError, Event, Store

T = TypeVar("T")
_MAX_WATCH_SECONDS = 1800.0


@dataclass
class Route:
    """A parsed resource URL."""

    rt: ResourceType
    namespace: str | None  # None: all namespaces (lists) or cluster-scoped
    name: str = ""
    subresource: str = ""


def _json(data: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(
        body=json.dumps(data).encode(), status=status, content_type="application/json"
    )


class ApiServer:
    """Serves the emulated API from a background thread (``start``/``stop`` or ``with``)."""

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        history: int = 5000,
        bookmark_interval: float = 5.0,
        request_log: int = 10000,
    ) -> None:
        self.host, self.port = host, port
        self.bookmark_interval = bookmark_interval
        self.faults = FaultInjector()
        self.requests = RequestLog(request_log)
        self._history = history
        self.store: Store | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: aiohttp.web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        #: The kubelet's pod directory, for ``pods/log`` (``Cluster`` sets it; None: no logs).
        self.log_root: Path | None = None
        self._proxy = Proxy()

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ApiServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve_start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._serve_stop())
            loop.close()

        self._thread = threading.Thread(target=serve, name="k8s-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(30) or failure:
            raise RuntimeError(f"API emulator did not start: {failure}")
        return self

    async def _serve_start(self) -> None:
        self.store = Store(history=self._history)
        self._stopping = asyncio.Event()
        app = aiohttp.web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = aiohttp.web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = aiohttp.web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _serve_stop(self) -> None:
        assert self._stopping is not None
        assert self._runner is not None
        self._stopping.set()
        await asyncio.sleep(0.05)
        await self._proxy.close()
        await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, func: Callable[[Store], T], timeout: float = 10.0) -> T:
        """Run ``func(store)`` on the server's thread (the store is not thread-safe)."""
        assert self._loop is not None
        assert self.store is not None
        store = self.store

        async def run() -> T:
            return func(store)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    # --- routing ------------------------------------------------------------------------------

    def _route(self, parts: list[str]) -> Route | None:
        assert self.store is not None
        registry = self.store.registry
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if len(rest) >= 3 and rest[0] == "namespaces":
            rt = registry.get(group, version, rest[2])
            if rt is not None and rt.namespaced:
                return Route(rt, rest[1], *rest[3:5])
        if not rest or len(rest) > 3:
            return None
        rt = registry.get(group, version, rest[0])
        if rt is None:
            return None
        return Route(rt, None, *rest[1:3])

    async def _handle(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        started = time.monotonic()
        verb, resource, namespace, name = "discovery", "", "", ""
        status = 500
        try:
            rule = self.faults.take(request.method, request.path)
            if rule is not None and rule.delay:
                await asyncio.sleep(rule.delay)
            parts = [p for p in request.path.split("/") if p]
            route = self._route(parts)
            if route is not None:
                resource = route.rt.plural + (f"/{route.subresource}" if route.subresource else "")
                namespace, name = route.namespace or "", route.name
                verb = self._verb(request, route)
            if rule is not None and rule.status is not None:
                raise ApiError(rule.status, fault_reason(rule.status), rule.message)
            response: aiohttp.web.StreamResponse
            if route is None:
                response = self._serve_static(request, parts)
            elif verb == "watch":
                response = await self._watch(request, route)
            else:
                response = await self._serve_resource(request, route, verb)
            status = response.status
            if verb == "create" and not name:
                name = _created_name(response)
            return response
        except ApiError as exc:
            status = exc.code
            return _json(exc.status(), exc.code)
        except SelectorError as exc:
            status = 400
            return _json(ApiError(400, "BadRequest", str(exc)).status(), 400)
        except patches.PatchError as exc:
            status = exc.status
            return _json(
                ApiError(
                    exc.status, "Invalid" if exc.status == 422 else "BadRequest", str(exc)
                ).status(),
                exc.status,
            )
        finally:
            self.requests.add(
                RequestRecord(
                    request.method,
                    request.path,
                    verb,
                    resource,
                    namespace,
                    name,
                    status,
                    started,
                    query=request.query_string,
                    token=request.headers.get("Authorization", "").removeprefix("Bearer "),
                )
            )

    @staticmethod
    def _verb(request: aiohttp.web.Request, route: Route) -> str:
        method = request.method
        if method == "GET":
            if request.query.get("watch") in ("true", "1"):
                return "watch"
            return "get" if route.name else "list"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if route.name else "deletecollection",
        }.get(method, method.lower())

    def _serve_static(self, request: aiohttp.web.Request, parts: list[str]) -> aiohttp.web.Response:
        assert self.store is not None
        registry = self.store.registry
        if request.method != "GET":
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        doc: dict[str, Any] | None = None
        if parts == ["api"]:
            doc = discovery.api_versions()
        elif parts == ["api", "v1"]:
            doc = discovery.resource_list(registry, "", "v1")
        elif parts == ["apis"]:
            doc = discovery.api_group_list(registry)
        elif len(parts) == 2 and parts[0] == "apis":
            doc = discovery.api_group(registry, parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = discovery.resource_list(registry, parts[1], parts[2])
        elif parts == ["version"]:
            doc = discovery.VERSION
        elif parts and parts[0] in ("healthz", "livez", "readyz"):
            return aiohttp.web.Response(text="ok")
        elif parts == ["openapi", "v2"]:
            return openapi.v2_response()
        elif parts and parts[0] == "openapi":
            doc = openapi.document(registry, parts[1:])
        if doc is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _json(doc)

    # --- verbs --------------------------------------------------------------------------------

    async def _body(self, request: aiohttp.web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return {}
        if "protobuf" in (request.content_type or ""):
            try:
                return protobuf.decode(raw)
            except protobuf.ProtobufError as exc:
                raise ApiError(415, "UnsupportedMediaType", str(exc)) from None
        try:
            if "yaml" in (request.content_type or ""):
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(
                400, "BadRequest", f"the body of the request could not be decoded: {exc}"
            ) from None

    async def _serve_resource(
        self, request: aiohttp.web.Request, route: Route, verb: str
    ) -> aiohttp.web.StreamResponse:
        assert self.store is not None
        store, rt, q = self.store, route.rt, request.query
        ns = route.namespace or ""
        if route.subresource == "log" and rt.group_plural == ("", "pods") and verb == "get":
            return await logs.serve_log(
                request, store=store, rt=rt, namespace=ns, name=route.name, log_root=self.log_root
            )
        if route.subresource == "proxy" and rt.group_plural in (("", "services"), ("", "pods")):
            return await self._proxy.serve(
                request, store=store, rt=rt, namespace=ns, raw_name=route.name
            )
        if route.subresource == "scale" and rt.group_plural in scale.SCALABLE:
            body = None if verb == "get" else await self._body(request)
            return _json(
                scale.serve(
                    store,
                    rt,
                    namespace=ns,
                    name=route.name,
                    verb=verb,
                    body=body,
                    content_type=request.headers.get("Content-Type", ""),
                )
            )
        if route.subresource and (route.subresource != "status" or not rt.status_subresource):
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({route.subresource})",
            )
        strict = q.get("fieldValidation") == "Strict"
        dry_run = q.get("dryRun") == "All"
        accept = request.headers.get("Accept", "")
        if verb == "get":
            obj = store.get(rt, ns, route.name)
            if tables.wants_table(accept):
                return _json(
                    tables.to_table(
                        rt,
                        [obj],
                        resource_version=obj["metadata"]["resourceVersion"],
                        include_object=q.get("includeObject", "Metadata"),
                    )
                )
            return _json(obj)
        if verb in ("list", "deletecollection"):
            labels = parse_label_selector(q.get("labelSelector"))
            fields = parse_field_selector(q.get("fieldSelector"))
            found = [o for o in store.list(rt, route.namespace) if labels(o) and fields(o)]
            if verb == "deletecollection":
                for obj in found:
                    meta = obj["metadata"]
                    with contextlib.suppress(ApiError):
                        store.delete(
                            rt,
                            meta.get("namespace", ""),
                            meta["name"],
                            propagation=q.get("propagationPolicy"),
                        )
                return _json(
                    {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
                )
            if tables.wants_table(accept):
                return _json(
                    tables.to_table(
                        rt,
                        found,
                        resource_version=str(store.rv),
                        include_object=q.get("includeObject", "Metadata"),
                    )
                )
            return _json(
                {
                    "kind": f"{rt.kind}List",
                    "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(store.rv)},
                    "items": found,
                }
            )
        if verb == "create":
            body = await self._body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request must be an object")
            created = store.create(rt, ns, body, strict=strict, dry_run=dry_run)
            if not dry_run:
                gc.collect_if_orphaned(store, rt, created)
            return _json(created, 201)
        if verb == "update":
            body = await self._body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request must be an object")
            return _json(
                store.update(
                    rt,
                    ns,
                    route.name,
                    body,
                    subresource=route.subresource,
                    strict=strict,
                    dry_run=dry_run,
                )
            )
        if verb == "patch":
            body = await self._body(request)
            if request.content_type == patches.APPLY:
                obj, code = apply.serve_apply(
                    store,
                    rt,
                    namespace=ns,
                    name=route.name,
                    body=body,
                    query=q,
                    subresource=route.subresource,
                )
                gc.collect_if_orphaned(store, rt, obj)
                return _json(obj, code)
            current = store.get(rt, ns, route.name)
            patched = patches.apply_patch(current, body, request.headers.get("Content-Type", ""))
            if (
                patched.get("metadata", {}).get("resourceVersion")
                == current["metadata"]["resourceVersion"]
            ):
                # an unchanged resourceVersion is no precondition: only a changed one conflicts
                patched["metadata"].pop("resourceVersion", None)
            return _json(
                store.update(
                    rt,
                    ns,
                    route.name,
                    patched,
                    subresource=route.subresource,
                    strict=strict,
                    dry_run=dry_run,
                )
            )
        if verb == "delete":
            body = await self._body(request)
            body = body if isinstance(body, dict) else {}
            pre = body.get("preconditions") or {}
            policy = q.get("propagationPolicy") or body.get("propagationPolicy")
            if body.get("orphanDependents") is True:
                policy = "Orphan"
            return _json(
                store.delete(
                    rt,
                    ns,
                    route.name,
                    propagation=policy,
                    precondition_uid=pre.get("uid"),
                    precondition_rv=pre.get("resourceVersion"),
                )
            )
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported here")

    # --- watch --------------------------------------------------------------------------------

    async def _watch(
        self, request: aiohttp.web.Request, route: Route
    ) -> aiohttp.web.StreamResponse:
        assert self.store is not None
        assert self._stopping is not None
        store, rt, q = self.store, route.rt, request.query
        labels = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(q.get("fieldSelector"))
        if route.name:
            fields = parse_field_selector(
                ",".join(filter(None, [q.get("fieldSelector"), f"metadata.name={route.name}"]))
            )
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        deadline = time.monotonic() + min(
            float(q.get("timeoutSeconds") or _MAX_WATCH_SECONDS), _MAX_WATCH_SECONDS
        )
        close_gen = self.faults.close_generation()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        store.watchers.add(queue)
        try:
            requested = q.get("resourceVersion") or ""
            if requested in ("", "0"):
                backlog = [
                    Event(
                        store.rv,
                        "ADDED",
                        rt.group,
                        rt.plural,
                        o["metadata"].get("namespace", ""),
                        o,
                    )
                    for o in store.list(rt, route.namespace)
                ]
                last = store.rv
            elif not requested.isdigit():
                raise ApiError(400, "BadRequest", f"invalid resourceVersion {requested!r}")
            elif int(requested) < store.oldest_rv():
                backlog, last = [], -1
            else:
                last = int(requested)
                backlog = [e for e in store.history if e.rv > last]
            response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            if last < 0:
                gone = ApiError(
                    410, "Expired", f"too old resource version: {requested} ({store.oldest_rv()})"
                )
                await response.write(
                    json.dumps({"type": "ERROR", "object": gone.status()}).encode() + b"\n"
                )
                return response

            def wanted(event: Event) -> bool:
                return (
                    (event.group, event.plural) == rt.group_plural
                    and (route.namespace is None or event.namespace == route.namespace)
                    and labels(event.obj)
                    and fields(event.obj)
                )

            for event in backlog if requested in ("", "0") else []:
                await response.write(
                    json.dumps({"type": "ADDED", "object": event.obj}).encode() + b"\n"
                )
            if requested in ("", "0"):
                backlog = []
            next_bookmark = time.monotonic() + self.bookmark_interval
            received = time.monotonic()  # when the backlog was taken from the store
            while not self._stopping.is_set():
                for event in backlog:
                    if event.rv <= last or not wanted(event) or self.faults.silenced(request.path):
                        continue
                    held = received + self.faults.lag(request.path) - time.monotonic()
                    if held > 0:  # a lagging stream (faults.lag_watches), order kept
                        await asyncio.sleep(held)
                    obj = {**event.obj, "apiVersion": rt.api_version}
                    await response.write(
                        json.dumps({"type": event.type, "object": obj}).encode() + b"\n"
                    )
                    last = max(last, event.rv)
                now = time.monotonic()
                if now >= deadline or self.faults.closed_since(close_gen, request.path):
                    break
                if bookmarks and now >= next_bookmark:
                    next_bookmark = now + self.bookmark_interval
                    if not self.faults.silenced(request.path):
                        mark = {
                            "kind": rt.kind,
                            "apiVersion": rt.api_version,
                            "metadata": {"resourceVersion": str(store.rv)},
                        }
                        await response.write(
                            json.dumps({"type": "BOOKMARK", "object": mark}).encode() + b"\n"
                        )
                wait = max(0.01, min(0.25, deadline - now))
                try:  # asyncio.timeout: wait_for can turn a cancellation into TimeoutError
                    async with asyncio.timeout(wait):
                        first = await queue.get()
                except TimeoutError:
                    backlog = []
                else:
                    backlog = [first]
                    received = time.monotonic()
                    while not queue.empty():
                        backlog.append(queue.get_nowait())
            return response
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            return aiohttp.web.Response(status=499)
        finally:
            store.watchers.discard(queue)


#: The ``reason`` a kube-apiserver gives with each status code (``metav1.StatusReason``).
STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
}


def fault_reason(status: int) -> str:
    """The reason an injected fault answers with, as a real API server words it."""
    return "InternalError" if status >= 500 else STATUS_REASONS.get(status, "Injected")


def _created_name(response: aiohttp.web.StreamResponse) -> str:
    """The name a create assigned (generateName, or a name only in the body), for the log."""
    body = getattr(response, "body", None)
    if not isinstance(body, bytes | bytearray):
        return ""
    try:
        created = json.loads(body)
    except ValueError:
        return ""
    metadata = created.get("metadata") if isinstance(created, dict) else None
    return str(metadata.get("name", "")) if isinstance(metadata, dict) else ""
