"""Cluster access, thin over the ``kubernetes`` client: objects come back as dicts.

:func:`connect` loads a kubeconfig and context into an ApiClient and proves the
API server answers; an unknown context or an unreachable cluster is
:class:`~tootcheck.errors.BadInput` with one line naming both. :class:`Kube`
offers the handful of calls the suite needs (get, list, server-side apply,
delete, logs, exec, events), each with a bounded request timeout, returning the
API's own JSON shape (camelCase dicts) so the pure judges in
:mod:`tootcheck.kube.readiness` read them directly.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from tootcheck.errors import BadInput, KindNotServed
from tootcheck.waiting import Poll, WaitTimeout, wait_until

REQUEST_TIMEOUT_S = 30.0
FIELD_MANAGER = "tootcheck"


def api_path(api_version: str, plural: str, namespace: str | None = None,
             name: str | None = None) -> str:
    """The API server's path of a kind's objects (in ``namespace``; None: cluster-wide),
    or of one of them by ``name``: ``/api/v1/namespaces/mastodon/secrets/x``."""
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    where = f"/namespaces/{quote(namespace, safe='')}" if namespace is not None else ""
    one = f"/{quote(name, safe='')}" if name is not None else ""
    return f"{root}{where}/{plural}{one}"


@dataclass(frozen=True)
class ExecResult:
    rc: int | None
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def _kube() -> Any:  # the kubernetes package, imported on first use (it is slow to import)
    import kubernetes

    return kubernetes


def contexts(kubeconfig: Path | None) -> tuple[list[str], str | None]:
    """(context names, current context) of a kubeconfig; BadInput if unreadable."""
    k = _kube()
    try:
        listed, current = k.config.list_kube_config_contexts(
            config_file=str(kubeconfig) if kubeconfig else None)
    except (k.config.ConfigException, OSError, TypeError, ValueError, KeyError,
            yaml.YAMLError) as exc:
        where = kubeconfig or "the default kubeconfig"
        raise BadInput(f"cannot read kubeconfig {where}: {' '.join(str(exc).split())}") from None
    return [c["name"] for c in listed or []], (current or {}).get("name")


def connect(kubeconfig: Path | None = None, context: str | None = None, *,
            probe: bool = True, timeout: float = 10.0) -> Kube:
    """An API client for ``context`` of ``kubeconfig`` that has answered once."""
    k = _kube()
    names, current = contexts(kubeconfig)
    chosen = context or current
    where = kubeconfig or "the default kubeconfig"
    if chosen is None:
        raise BadInput(f"{where} has no current context; pass --kube-context")
    if chosen not in names:
        raise BadInput(f"kube context {chosen!r} not found in {where} "
                       f"(known: {', '.join(names) or 'none'})")
    try:
        api = k.config.new_client_from_config(
            config_file=str(kubeconfig) if kubeconfig else None, context=chosen)
    except (k.config.ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"kube context {chosen!r}: {' '.join(str(exc).split())}") from None
    api.configuration.retries = 1
    kube = Kube(api, chosen, kubeconfig)
    if probe:
        kube.server_version(timeout=timeout)
    return kube


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = " ".join(str(reason).split())
    return text[:300]


class Kube:
    """The suite's handle on one cluster."""

    def __init__(self, api_client: Any, context: str, kubeconfig: Path | None) -> None:
        self.api = api_client
        self.context = context
        self.kubeconfig = kubeconfig
        self._dynamic: Any = None
        # Discovery (the dynamic client's lazy, cached resource list) is not thread-safe, and
        # the bring-up runs phases in threads: lookups and refreshes take turns; the API
        # calls themselves run in parallel.
        self._discovery = threading.RLock()
        # How long an unknown kind may take to appear in discovery (a fresh CRD);
        # evidence collection sets 0 to fail fast on kinds that are not installed.
        self.discovery_timeout = 30.0

    # -- basics

    @property
    def server(self) -> str:
        return str(self.api.configuration.host)

    def server_version(self, *, timeout: float = 10.0) -> str:
        k = _kube()
        try:
            info = k.client.VersionApi(self.api).get_code(_request_timeout=timeout)
        except Exception as exc:  # urllib3 and ApiException alike: one line, no traceback
            raise BadInput(f"cluster {self.server} (context {self.context}) unreachable: "
                           f"{_reason(exc)}") from None
        return str(info.git_version)

    def get_json(self, path: str, *, timeout: float) -> Any:
        """The API server's JSON at ``path`` (``/api/v1/...``), read with the client's
        host, credentials and TLS settings but without its typed models: importing them
        costs seconds, converting every object costs more, and a model drops fields the
        client version does not know. An HTTP error raises the client's ApiException."""
        import json

        api = self.api
        headers = {"Accept": "application/json"}
        if hasattr(api, "param_serialize"):  # the generated client of kubernetes >= 37
            response = api.call_api(*api.param_serialize(
                "GET", path, header_params=headers, auth_settings=["BearerToken"]),
                _request_timeout=timeout)
            body = response.read()
            if not 200 <= response.status <= 299:
                api.response_deserialize(response, {})  # raises the ApiException
        else:  # kubernetes 31-36: the older generated client (raises for an HTTP error)
            body = api.call_api(path, "GET", header_params=headers,
                                auth_settings=["BearerToken"], _preload_content=False,
                                _return_http_data_only=True, _request_timeout=timeout).data
        return json.loads(body)

    @property
    def core(self) -> Any:
        return _kube().client.CoreV1Api(self.api)

    @property
    def dynamic(self) -> Any:
        with self._discovery:
            if self._dynamic is None:
                k = _kube()
                self._dynamic = k.dynamic.DynamicClient(self.api)
            return self._dynamic

    def resource(self, api_version: str, kind: str) -> Any:
        """The dynamic resource. Discovery is refreshed (bounded) when the kind is
        unknown, since a CRD installed a moment ago takes a while to be served. The lock
        is held per attempt, not across that wait: the other phases' threads look up
        their kinds meanwhile."""
        k = _kube()
        missing = KindNotServed(f"cluster {self.server} serves no {kind} in {api_version} "
                                "(a CRD missing or not installed yet?)")
        with self._discovery:
            try:
                return self.dynamic.resources.get(api_version=api_version, kind=kind)
            except k.dynamic.exceptions.ResourceNotFoundError:
                if self.discovery_timeout <= 0:
                    raise missing from None

        def discovered() -> Poll[Any]:
            with self._discovery:
                self.dynamic.resources.invalidate_cache()
                try:
                    return Poll(True, self.dynamic.resources.get(api_version=api_version,
                                                                 kind=kind))
                except k.dynamic.exceptions.ResourceNotFoundError:
                    return Poll(False, state=f"{kind} not served under {api_version}")

        try:
            return wait_until(discovered, what=f"API resource {api_version} {kind}",
                              timeout=self.discovery_timeout, interval=2.0)
        except WaitTimeout:
            raise missing from None

    def to_dict(self, obj: Any) -> dict[str, Any]:
        """The API's JSON shape of a dynamic ResourceInstance or a typed model."""
        if isinstance(obj, dict):
            return obj
        if isinstance(obj, _kube().dynamic.resource.ResourceInstance):
            return dict(obj.to_dict())
        return dict(self.api.sanitize_for_serialization(obj))

    # -- objects

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None,
            ) -> dict[str, Any] | None:
        k = _kube()
        try:
            obj = self.resource(api_version, kind).get(
                name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT_S)
        except k.dynamic.exceptions.NotFoundError:
            return None
        return self.to_dict(obj)

    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None,
             ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"_request_timeout": REQUEST_TIMEOUT_S}
        if namespace:
            kwargs["namespace"] = namespace
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        listed = self.to_dict(self.resource(api_version, kind).get(**kwargs))
        items = listed.get("items") or []
        for item in items:  # list items omit kind/apiVersion
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
        return items

    def apply(self, doc: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply one object (conflicts forced: the suite owns its cluster)."""
        resource = self.resource(doc["apiVersion"], doc["kind"])
        meta = doc.get("metadata") or {}
        result = resource.server_side_apply(
            body=dict(doc), name=meta.get("name"), namespace=meta.get("namespace"),
            field_manager=field_manager, force_conflicts=True, _request_timeout=REQUEST_TIMEOUT_S)
        return self.to_dict(result)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None,
               *, grace_period_seconds: int | None = None) -> bool:
        k = _kube()
        kwargs: dict[str, Any] = {"name": name, "_request_timeout": REQUEST_TIMEOUT_S}
        if namespace:
            kwargs["namespace"] = namespace
        if grace_period_seconds is not None:
            kwargs["grace_period_seconds"] = grace_period_seconds
        try:
            self.resource(api_version, kind).delete(**kwargs)
        except k.dynamic.exceptions.NotFoundError:
            return False
        return True

    # ``builtins.list`` below: inside the class, ``list`` names the method above.
    def namespaces(self) -> builtins.list[str]:
        return [n["metadata"]["name"] for n in self.list("v1", "Namespace")]

    def events(self, namespace: str | None = None) -> builtins.list[dict[str, Any]]:
        return self.list("v1", "Event", namespace)

    # -- pods

    def pod_log(self, namespace: str, pod: str, container: str, *, previous: bool = False,
                tail_lines: int | None = None) -> str:
        return str(self.core.read_namespaced_pod_log(
            pod, namespace, container=container, previous=previous, tail_lines=tail_lines,
            timestamps=True, _request_timeout=REQUEST_TIMEOUT_S))

    def exec(self, namespace: str, pod: str, container: str, argv: Sequence[str], *,
             timeout: float = 300.0) -> ExecResult:
        """Run ``argv`` in a container (no TTY, no stdin) and collect its output.

        The output is returned, never logged: callers parse what they need and
        wrap credentials in Secrets.
        """
        k = _kube()
        try:
            ws = k.stream.stream(
                self.core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                command=list(argv), stderr=True, stdin=False, stdout=True, tty=False,
                _preload_content=False)
        except k.client.ApiException as exc:
            raise BadInput(f"exec in {namespace}/{pod}/{container} refused: {_reason(exc)}") from None
        out: list[str] = []
        err: list[str] = []

        def pump() -> Poll[None]:
            ws.update(timeout=1)
            if ws.peek_stdout():
                out.append(ws.read_stdout())
            if ws.peek_stderr():
                err.append(ws.read_stderr())
            return Poll(not ws.is_open(), state=f"{sum(map(len, out))} bytes of output so far")

        try:
            wait_until(pump, what=f"`{argv[0]}` in {namespace}/{pod}/{container}", timeout=timeout,
                       interval=0.0)
            return ExecResult(ws.returncode, "".join(out), "".join(err))
        finally:
            ws.close()
