"""Authentik's flow executor, driven without a browser.

The browser's flow interface (``/if/flow/<slug>/?<query>``) runs a flow by calling
``/api/v3/flows/executor/<slug>/?query=<the interface's query string>``: GET returns
the current stage's challenge, POST answers it, a 302 leads back to GET for the
next challenge, and ``xak-flow-redirect`` ends the flow (``ak-stage-access-denied``
ends it in failure). Flow state lives in Authentik's session, so one cookie jar
must carry every request; POSTs carry the ``authentik_csrf`` cookie's value in
``X-authentik-CSRF``, as Authentik's web client does.

Sources (goauthentik/authentik): ``website/docs/developer-docs/api/flow-executor.md``,
``authentik/flows/views/executor.py`` (``?query=``, ``stage_ok`` redirect, ``to_stage_response``),
``authentik/flows/challenge.py`` (component names, ``response_errors``, ``xak-flow-redirect``,
``ak-stage-access-denied``, ``ak-stage-flow-error``), ``authentik/stages/identification/stage.py``
(``uid_field``, ``password`` when ``password_fields``), ``authentik/stages/password/stage.py``
(``password``), ``authentik/stages/consent/stage.py`` (``token``),
``authentik/stages/user_login/stage.py`` (``remember_me``, asked only with a remember-me offset),
``authentik/root/settings.py`` (``CSRF_COOKIE_NAME``/``CSRF_HEADER_NAME``),
``web/src/common/api/config.ts`` (the client copies the cookie into the header).

:class:`FlowExecutor` is a state machine over challenge components with one
handler per stage; it remembers every stage it reached, so a failure says where
the flow stopped. The password is a :class:`~tootcheck.redaction.Secret` revealed
only inside the password handlers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from tootcheck.redaction import Secret

REQUEST_TIMEOUT_S = 15.0
MAX_STEPS = 12

IDENTIFICATION = "ak-stage-identification"
PASSWORD = "ak-stage-password"
CONSENT = "ak-stage-consent"
USER_LOGIN = "ak-stage-user-login"  # only when the login stage offers "stay signed in"
REDIRECT = "xak-flow-redirect"
ACCESS_DENIED = "ak-stage-access-denied"
FLOW_ERROR = "ak-stage-flow-error"

CSRF_COOKIE = "authentik_csrf"
CSRF_HEADER = "X-authentik-CSRF"
EXECUTOR_PATH = "/api/v3/flows/executor/{slug}/"
_FLOW_INTERFACE = re.compile(r"^/if/flow/(?P<slug>[A-Za-z0-9_-]+)/?$")


@dataclass(frozen=True)
class Credentials:
    """The Authentik user the flow logs in as; the password never prints."""

    uid: str
    password: Secret


class FlowStopped(Exception):
    """The flow ended without a redirect. ``stage`` is where it stopped.

    ``kind``: ``rejected`` (the stage answered with response_errors), ``denied``
    (``ak-stage-access-denied``), ``unexpected-consent``, ``unsupported`` (a stage
    this driver does not answer), ``protocol`` (an answer that is not a challenge).
    """

    def __init__(self, stage: str, kind: str, message: str, stages: list[str]) -> None:
        self.stage = stage
        self.kind = kind
        self.stages = list(stages)
        super().__init__(" ".join(message.split()))


def flow_location(url: str) -> tuple[str, str] | None:
    """``(slug, query)`` when ``url`` is Authentik's flow interface, else None.

    >>> flow_location("https://auth.example/if/flow/default-authentication-flow/?next=%2Fx")
    ('default-authentication-flow', 'next=%2Fx')
    >>> flow_location("https://auth.example/application/o/authorize/?a=b") is None
    True
    """
    parts = urlsplit(url)
    match = _FLOW_INTERFACE.match(parts.path)
    return (match["slug"], parts.query) if match else None


def response_errors_text(errors: object) -> str:
    """``response_errors`` ({field: [{string, code}]}) as one line.

    >>> response_errors_text({"password": [{"string": "Invalid password", "code": "invalid"}]})
    'password: Invalid password'
    """
    if not isinstance(errors, Mapping):
        return str(errors)
    parts = []
    for name, items in errors.items():
        texts = [str(i.get("string", i)) if isinstance(i, Mapping) else str(i)
                 for i in (items if isinstance(items, list) else [items])]
        label = "" if name == "non_field_errors" else f"{name}: "
        parts.append(label + "; ".join(texts))
    return ", ".join(parts)


class FlowExecutor:
    """Runs Authentik flows through the executor API on one ``requests`` session.

    ``allow_consent``: answer an ``ak-stage-consent`` challenge (explicit-consent
    authorization flows); when False, a consent stage stops the run as
    ``unexpected-consent`` because the deployment is meant to use implicit consent.
    """

    def __init__(
        self,
        session: requests.Session,
        origin: str,
        credentials: Credentials,
        *,
        allow_consent: bool = False,
        timeout: float = REQUEST_TIMEOUT_S,
        max_steps: int = MAX_STEPS,
    ) -> None:
        self.session = session
        self.origin = origin.rstrip("/")
        self.credentials = credentials
        self.allow_consent = allow_consent
        self.timeout = timeout
        self.max_steps = max_steps
        self.stages: list[str] = []  # every challenge component reached, in order
        self._handlers: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
            IDENTIFICATION: self._identification,
            PASSWORD: self._password,
            CONSENT: self._consent,
            USER_LOGIN: self._user_login,
        }

    # ---------------------------------------------------------------- the run

    def run(self, slug: str, query: str) -> str:
        """Execute flow ``slug`` started with the interface query ``query``; returns
        the absolute URL of the final ``xak-flow-redirect``."""
        interface = f"{self.origin}/if/flow/{slug}/" + (f"?{query}" if query else "")
        url = f"{self.origin}{EXECUTOR_PATH.format(slug=slug)}"
        params = {"query": query}
        challenge = self._request("GET", url, params, None, interface, stage="flow start")
        answered: str | None = None
        for _ in range(self.max_steps):
            component = str(challenge.get("component", ""))
            self.stages.append(component)
            if component == REDIRECT:
                return urljoin(self.origin + "/", str(challenge.get("to", "")))
            where = answered or "flow start"
            if component == ACCESS_DENIED:
                reason = challenge.get("error_message") or "no reason given"
                raise FlowStopped(where, "denied",
                                  f"Authentik denied access at {where}: {reason}", self.stages)
            if component == FLOW_ERROR:
                raise FlowStopped(where, "protocol",
                                  f"Authentik reported a flow error after {where} "
                                  f"(request id {challenge.get('request_id', '?')})", self.stages)
            if challenge.get("response_errors") and component == answered:
                text = response_errors_text(challenge["response_errors"])
                raise FlowStopped(component, "rejected",
                                  f"Authentik rejected the answer at {component}: {text}", self.stages)
            handler = self._handlers.get(component)
            if handler is None:
                raise FlowStopped(component, "unsupported",
                                  f"flow {slug} reached a stage the driver cannot answer: "
                                  f"{component or 'no component'}", self.stages)
            body = handler(challenge)
            answered = component
            challenge = self._request("POST", url, params, body, interface, stage=component)
        raise FlowStopped(answered or "flow start", "protocol",
                          f"flow {slug} did not finish within {self.max_steps} steps", self.stages)

    # ---------------------------------------------------------------- handlers

    def _identification(self, challenge: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"component": IDENTIFICATION, "uid_field": self.credentials.uid}
        if challenge.get("password_fields"):
            # An identification stage with a password stage attached checks both at once.
            body["password"] = self.credentials.password.reveal()
        return body

    def _password(self, challenge: Mapping[str, Any]) -> dict[str, Any]:
        return {"component": PASSWORD, "password": self.credentials.password.reveal()}

    def _consent(self, challenge: Mapping[str, Any]) -> dict[str, Any]:
        if not self.allow_consent:
            asked = ", ".join(str(p.get("id", p)) for p in challenge.get("permissions") or []
                              if isinstance(p, Mapping)) or "no scopes listed"
            raise FlowStopped(CONSENT, "unexpected-consent",
                              f"Authentik asked for consent ({asked}) but the authorization flow "
                              "is expected to be implicit", self.stages)
        return {"component": CONSENT, "token": challenge.get("token", "")}

    def _user_login(self, challenge: Mapping[str, Any]) -> dict[str, Any]:
        return {"component": USER_LOGIN, "remember_me": False}

    # ---------------------------------------------------------------- transport

    def csrf_token(self) -> str | None:
        host = urlsplit(self.origin).hostname or ""
        for cookie in self.session.cookies:
            if cookie.name == CSRF_COOKIE and host.endswith(cookie.domain.lstrip(".")):
                return cookie.value
        return None

    def _request(
        self,
        method: str,
        url: str,
        params: Mapping[str, str],
        body: Mapping[str, Any] | None,
        interface: str,
        *,
        stage: str,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Referer": interface}
        if method == "POST":
            headers["Origin"] = self.origin
            token = self.csrf_token()
            if token:
                headers[CSRF_HEADER] = token
        try:
            response = self.session.request(method, url, params=params, json=body,
                                            headers=headers, timeout=self.timeout,
                                            allow_redirects=False)
            # A solved stage answers 302 back to the executor; the next challenge is a GET.
            for _ in range(3):
                if response.status_code not in (301, 302, 303, 307, 308):
                    break
                target = urljoin(response.url, response.headers.get("Location", ""))
                if not target.startswith(self.origin + "/"):
                    raise FlowStopped(stage, "protocol",
                                      f"the executor redirected off Authentik after {stage}",
                                      self.stages)
                response = self.session.get(target, headers={"Accept": "application/json",
                                                             "Referer": interface},
                                            timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise FlowStopped(stage, "protocol",
                              f"the flow executor was unreachable at {stage}: "
                              f"{type(exc).__name__}", self.stages) from None
        detail = ""
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if response.status_code == 200 and isinstance(doc, dict) and "component" in doc:
            return doc
        if isinstance(doc, dict) and doc.get("detail"):
            detail = f": {doc['detail']}"
        raise FlowStopped(stage, "protocol",
                          f"the flow executor answered HTTP {response.status_code} at {stage}{detail}",
                          self.stages)
