"""OpenID Connect as Mastodon uses it: the provider's discovery document and keys,
Mastodon's pages, and the browser login walked without a browser (:class:`MastodonLogin`).

Provider side (what OmniAuth's ``openid_connect`` strategy reads at login):
:func:`discovery_url` joins the issuer path with ``.well-known/openid-configuration``
like the openid_connect gem (``lib/openid_connect/discovery/provider/config/resource.rb``),
:func:`fetch_metadata` parses the document, :func:`issuer_mismatch` compares issuers
exactly as ``config/response.rb#validate_issuer_matching`` does (a trailing slash
counts), and :func:`usable_keys` says which JWKS keys can verify a JWS algorithm.

Mastodon side (``app/views/auth/sessions/new.html.haml``, ``app/helpers/application_helper.rb``,
``app/views/application/_flashes.html.haml``): :func:`csrf_token_from` reads the
``<meta name="csrf-token">`` tag, :func:`flash_messages` the ``.flash-message`` texts
Devise's OmniAuth failure action leaves, :func:`initial_state` the web app's
``<script id="initial-state">`` JSON that carries the session's access token.

Nothing here asserts; failures raise :class:`OIDCError` with a one-line message.

One module of about 590 lines on purpose: the provider documents, Mastodon's pages and
the flow-executor walk are one protocol conversation that shares its session, its
parsers and its error pages; split, each part would import the others.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from requests.cookies import RequestsCookieJar, get_cookie_header

from tootcheck.clients.authentik import FlowExecutor, FlowStopped, flow_location

REQUEST_TIMEOUT_S = 15.0
WELL_KNOWN = ".well-known/openid-configuration"
ENDPOINT_FIELDS = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")


class OIDCError(Exception):
    """A protocol step failed. The message is one line and never holds a secret."""


# ------------------------------------------------------------------ discovery


def discovery_url(issuer: str) -> str:
    """The discovery document's URL for ``issuer``, built like the openid_connect gem:
    ``File.join(issuer_path, ".well-known/openid-configuration")``.

    >>> discovery_url("https://auth.kirchner.social/application/o/mastodon/")
    'https://auth.kirchner.social/application/o/mastodon/.well-known/openid-configuration'
    >>> discovery_url("https://auth.kirchner.social/application/o/mastodon")
    'https://auth.kirchner.social/application/o/mastodon/.well-known/openid-configuration'
    """
    parts = urlsplit(issuer)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/" + WELL_KNOWN, "", ""))


@dataclass(frozen=True)
class ProviderMetadata:
    """The fields of an OpenID Provider's discovery document that Mastodon uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    signing_algs: tuple[str, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_document(cls, doc: object) -> ProviderMetadata:
        if not isinstance(doc, Mapping):
            raise OIDCError("the discovery document is not a JSON object")
        missing = [k for k in ("issuer", *ENDPOINT_FIELDS) if not isinstance(doc.get(k), str)]
        if missing:
            raise OIDCError(f"the discovery document lacks {', '.join(missing)}")
        algs = doc.get("id_token_signing_alg_values_supported") or ["RS256"]  # OIDC default
        return cls(
            issuer=doc["issuer"],
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            userinfo_endpoint=doc["userinfo_endpoint"],
            jwks_uri=doc["jwks_uri"],
            signing_algs=tuple(str(a) for a in algs),
            raw=dict(doc),
        )

    def endpoints(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ENDPOINT_FIELDS}


def _get(session: requests.Session, url: str, what: str, timeout: float) -> requests.Response:
    try:
        return session.get(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise OIDCError(f"{what} {url} unreachable: {describe_error(exc)}") from None


def fetch_metadata(
    session: requests.Session, issuer: str, *, timeout: float = REQUEST_TIMEOUT_S
) -> tuple[ProviderMetadata, str]:
    """Fetch and parse the discovery document; returns it and the URL it came from."""
    url = discovery_url(issuer)
    response = _get(session, url, "discovery document", timeout)
    if response.status_code != 200:
        raise OIDCError(f"discovery document {url} answered HTTP {response.status_code}")
    try:
        doc = response.json()
    except ValueError:
        raise OIDCError(f"discovery document {url} is not JSON "
                        f"(Content-Type {response.headers.get('Content-Type', 'none')})") from None
    return ProviderMetadata.from_document(doc), url


def issuer_mismatch(expected: str, actual: str) -> str | None:
    """Why ``actual`` is not ``expected`` (exact comparison, as OmniAuth does), or None.

    >>> issuer_mismatch("https://a/o/m/", "https://a/o/m/") is None
    True
    >>> issuer_mismatch("https://a/o/m/", "https://a/o/m")
    "the provider's issuer lacks the trailing slash OIDC_ISSUER has"
    """
    if expected == actual:
        return None
    if expected.rstrip("/") == actual.rstrip("/"):
        if expected.endswith("/") and not actual.endswith("/"):
            return "the provider's issuer lacks the trailing slash OIDC_ISSUER has"
        if actual.endswith("/") and not expected.endswith("/"):
            return "the provider's issuer has a trailing slash OIDC_ISSUER lacks"
        return "the issuers differ only in trailing slashes"
    return "the issuers differ"


def is_https(url: str) -> bool:
    return urlsplit(url).scheme == "https" and bool(urlsplit(url).hostname)


def probe(session: requests.Session, url: str, *, timeout: float = REQUEST_TIMEOUT_S) -> int:
    """GET ``url`` without following redirects; the HTTP status (TLS verified)."""
    return _get(session, url, "endpoint", timeout).status_code


def fetch_jwks(
    session: requests.Session, url: str, *, timeout: float = REQUEST_TIMEOUT_S
) -> dict[str, Any]:
    response = _get(session, url, "JWKS", timeout)
    if response.status_code != 200:
        raise OIDCError(f"JWKS {url} answered HTTP {response.status_code}")
    try:
        doc = response.json()
    except ValueError:
        raise OIDCError(f"JWKS {url} is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise OIDCError(f"JWKS {url} has no 'keys' list")
    return doc


def is_asymmetric(alg: str) -> bool:
    algorithm = JWSRegistry.algorithms.get(alg)
    return algorithm is not None and algorithm.key_type in ("RSA", "EC", "OKP")


def usable_keys(jwks: Mapping[str, Any], alg: str) -> list[str]:
    """Descriptions (``kid``) of the JWKS keys that can verify a JWS signed with ``alg``.

    A key qualifies when joserfc imports it, its type (and EC curve) fits the
    algorithm, and its ``use``/``alg``/``key_ops`` members, when present, allow it.
    """
    algorithm = JWSRegistry.algorithms.get(alg)
    if algorithm is None or not is_asymmetric(alg):
        return []
    curve = getattr(algorithm, "curve", None)
    found: list[str] = []
    for index, entry in enumerate(jwks.get("keys") or []):
        if not isinstance(entry, Mapping):
            continue
        try:
            key = KeySet.import_key_set({"keys": [dict(entry)]}).keys[0]
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        if key.key_type != algorithm.key_type:
            continue
        if curve and entry.get("crv") != curve:
            continue
        if entry.get("use") not in (None, "sig"):
            continue
        if entry.get("alg") not in (None, alg):
            continue
        ops = entry.get("key_ops")
        if ops is not None and "verify" not in ops:
            continue
        found.append(str(entry.get("kid") or f"key #{index}"))
    return found


def describe_error(exc: BaseException) -> str:
    """A short, one-line reason for a requests error (no URL repetition, no secrets).

    >>> describe_error(OSError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
    ...                        "unable to get local issuer certificate (_ssl.c:1000)"))
    'TLS certificate verify failed: unable to get local issuer certificate'
    """
    text = " ".join(str(exc).split())
    tls = re.search(r"certificate verify failed: ([^()'\"]+)", text)
    if tls:
        return f"TLS certificate verify failed: {tls[1].strip()}"
    for marker, reason in (("CERTIFICATE_VERIFY_FAILED", "TLS certificate verify failed"),
                           ("Connection refused", "connection refused"),
                           ("timed out", "timed out"),
                           ("Name or service not known", "the name does not resolve"),
                           ("Temporary failure in name resolution", "the name does not resolve")):
        if marker in text:
            return reason
    return f"{type(exc).__name__}: {text[:160]}"


# ------------------------------------------------------------------ Mastodon's pages


_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "source", "track", "wbr"})


class _PageParser(HTMLParser):
    """Collects the few things the login driver reads from an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.flashes: list[str] = []
        self.initial_state: str | None = None
        self.headings: dict[str, list[str]] = {}
        self._flash_depth = 0
        self._flash_text: list[str] = []
        self._depth = 0
        self._in_state = False
        self._state_text: list[str] = []
        self._heading: str | None = None
        self._heading_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "meta" and "name" in attr:
            self.meta[attr["name"]] = attr.get("content", "")
        if tag == "script" and attr.get("id") == "initial-state":
            self._in_state = True
        if tag in ("h1", "h2", "h3", "p") and self._heading is None:
            self._heading, self._heading_text = tag, []
        if tag in _VOID:
            return
        self._depth += 1
        if self._flash_depth == 0 and "flash-message" in attr.get("class", "").split():
            self._flash_depth = self._depth
            self._flash_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_state:
            self._in_state = False
            self.initial_state = "".join(self._state_text)
        if tag == self._heading:
            text = " ".join("".join(self._heading_text).split())
            if text:
                self.headings.setdefault(tag, []).append(text)
            self._heading = None
        if tag in _VOID:
            return
        if self._flash_depth and self._depth == self._flash_depth:
            text = " ".join("".join(self._flash_text).split())
            if text:
                self.flashes.append(text)
            self._flash_depth = 0
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._in_state:
            self._state_text.append(data)
        if self._flash_depth:
            self._flash_text.append(data)
        if self._heading:
            self._heading_text.append(data)


def _parse(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


def csrf_token_from(html: str) -> str | None:
    """The Rails authenticity token from ``<meta name="csrf-token" content="...">``.

    >>> csrf_token_from('<head><meta name="csrf-token" content="abc"></head>')
    'abc'
    """
    return _parse(html).meta.get("csrf-token") or None


def flash_messages(html: str) -> list[str]:
    """The texts of Mastodon's ``.flash-message`` boxes (Devise notices and alerts).

    >>> flash_messages('<div class="flash-message alert"><strong>Nope.</strong></div>')
    ['Nope.']
    """
    return _parse(html).flashes


def initial_state(html: str) -> dict[str, Any] | None:
    """The web app's initial state (``<script id="initial-state">``), or None."""
    raw = _parse(html).initial_state
    if raw is None:
        return None
    try:
        state = json.loads(raw)
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


@dataclass(frozen=True)
class WebSession:
    """What Mastodon's home page says about the signed-in user (ApplicationHelper#render_initial_state)."""

    access_token: str | None
    account_id: str | None
    username: str | None

    @property
    def is_signed_in(self) -> bool:
        return bool(self.access_token and self.account_id)


def web_session(state: Mapping[str, Any] | None) -> WebSession:
    """Read ``meta.access_token``, ``meta.me`` and ``accounts[me].username`` from the initial state.

    >>> web_session({"meta": {"access_token": None}}).is_signed_in
    False
    """
    meta = (state or {}).get("meta") or {}
    me = meta.get("me")
    account = ((state or {}).get("accounts") or {}).get(str(me)) if me else None
    return WebSession(
        access_token=meta.get("access_token") or None,
        account_id=str(me) if me else None,
        username=(account or {}).get("username"),
    )


def error_page(html: str) -> str:
    """The title and message of an HTML error page (Authentik's ``error/generic.html``: the
    title in ``<h1>``, the description in a ``<p>``; older templates put it in ``<h3>``).

    >>> error_page('<h1>Redirect URI Error</h1><form><p>The request fails.</p></form>')
    'Redirect URI Error: The request fails.'
    """
    parser = _parse(html)
    message = parser.headings.get("h3", [])[:1] or parser.headings.get("p", [])[:1]
    parts = [*parser.headings.get("h1", [])[:1], *message]
    return ": ".join(parts) if parts else ""


# ------------------------------------------------------------------ Mastodon usernames


def mastodon_username_for(uid: str) -> str:
    """The username Mastodon derives from the OIDC uid claim on first login
    (``User::Omniauthable#ensure_valid_username``; a clash adds ``_1``, ``_2``...).

    >>> mastodon_username_for("test.user@example.org")
    'testuser'
    """
    local = uid.split("@")[0]
    return "".join(c for c in local if c.isascii() and (c.isalnum() or c == "_"))[:30]


# ------------------------------------------------------------------ the browser login, headless

SIGN_IN_PATH = "/auth/sign_in"
START_PATH = "/auth/auth/openid_connect"  # Devise omniauth_authorize_path(:user, :openid_connect)
CALLBACK_PATH = "/auth/auth/openid_connect/callback"
MAX_HOPS = 12


class LoginFailed(OIDCError):
    """The login stopped. ``phase``: start, authorize, flow, callback, session.
    ``stage``: the Authentik stage reached (flow phase), ``kind``: see FlowStopped."""

    def __init__(self, phase: str, message: str, *, stage: str | None = None,
                 kind: str = "", stages: list[str] | None = None) -> None:
        self.phase = phase
        self.stage = stage
        self.kind = kind
        self.stages = list(stages or [])
        super().__init__(" ".join(message.split()))


def with_query_param(url: str, name: str, value: str) -> str:
    """``url`` with query parameter ``name`` set to ``value`` (replaced in place, or appended).

    >>> with_query_param("https://h/cb?code=1&state=a", "state", "b")
    'https://h/cb?code=1&state=b'
    >>> with_query_param("https://h/cb?code=1", "state", "b")
    'https://h/cb?code=1&state=b'
    """
    parts = urlsplit(url)
    pairs = [(k, value if k == name else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    if name not in {k for k, _ in pairs}:
        pairs.append((name, value))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), parts.fragment))


def strict_host_cookies(session: requests.Session) -> None:
    """Send a host-only cookie to its own host only, as browsers do.

    ``requests`` copies the session jar into a fresh jar with the stdlib's liberal
    policy for every request, which sends kirchner.social's host-only session
    cookie to auth.kirchner.social too. This recomputes each request's Cookie
    header from the session jar under ``DomainStrictNonDomain``.
    """
    prepare = session.prepare_request

    def prepare_request(request: requests.Request) -> requests.PreparedRequest:
        prepared = prepare(request)
        jar = RequestsCookieJar(policy=DefaultCookiePolicy(
            strict_ns_domain=DefaultCookiePolicy.DomainStrictNonDomain))
        jar.update(session.cookies)
        prepared.headers.pop("Cookie", None)
        header = get_cookie_header(jar, prepared)  # type: ignore[no-untyped-call]  # untyped in types-requests
        if header:
            prepared.headers["Cookie"] = header
        return prepared

    session.prepare_request = prepare_request  # type: ignore[method-assign]


class MastodonLogin:
    """Mastodon's "Log in with Authentik" button, followed like a browser would.

    1. ``GET /auth/sign_in`` and read the CSRF meta tag; ``POST /auth/auth/openid_connect``
       with ``authenticity_token``; Mastodon (OmniAuth) redirects to the authorize endpoint.
    2. Follow redirects into Authentik's flow interface and run each flow through
       the executor (:class:`~tootcheck.clients.authentik.FlowExecutor`) until a
       redirect leads back to Mastodon's callback.
    3. ``GET`` the callback; Mastodon signs in and redirects home. The home page's
       initial state proves the session.

    One session (one cookie jar) carries every request across both hosts.
    ``trace`` lists each request on the session, executor calls included, as
    ``METHOD host path -> status`` (no query strings: they carry state, nonce and
    codes); ``phases`` times each step.
    """

    def __init__(self, session: requests.Session, *, domain: str, auth_host: str,
                 executor_factory: Callable[[requests.Session, str], FlowExecutor],
                 timeout: float = REQUEST_TIMEOUT_S, max_hops: int = MAX_HOPS) -> None:
        strict_host_cookies(session)
        self.session = session
        self.domain = domain
        self.auth_host = auth_host
        self.timeout = timeout
        self.max_hops = max_hops
        self.executor = executor_factory(session, f"https://{auth_host}")
        self.trace: list[str] = []
        self.phases: dict[str, float] = {}
        session.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        parts = urlsplit(response.request.url or "")
        self.trace.append(f"{response.request.method} {parts.hostname}{parts.path} "
                          f"-> {response.status_code}")

    @property
    def base(self) -> str:
        return f"https://{self.domain}"

    # ---------------------------------------------------------------- transport

    def _send(self, method: str, url: str, phase: str, **kwargs: Any) -> requests.Response:
        host = urlsplit(url).hostname or ""
        if urlsplit(url).scheme != "https" or host not in (self.domain, self.auth_host):
            raise LoginFailed(phase, f"the login was sent to {urlsplit(url).scheme}://{host}, "
                              f"outside https://{self.domain} and https://{self.auth_host}")
        try:
            response = self.session.request(method, url, timeout=self.timeout,
                                            allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            raise LoginFailed(phase, f"{method} https://{host}{urlsplit(url).path} failed: "
                              f"{describe_error(exc)}") from None
        return response

    @staticmethod
    def _location(response: requests.Response) -> str:
        return urljoin(response.url, response.headers.get("Location", ""))

    def _timed(self, phase: str, started: float) -> None:
        self.phases[phase] = round(time.monotonic() - started, 4)

    def flash(self, phase: str) -> str:
        """The flash messages on the sign-in page (where Devise's OmniAuth failure lands)."""
        response = self._send("GET", self.base + SIGN_IN_PATH, phase)
        return " ".join(flash_messages(response.text)) or "no message shown"

    # ---------------------------------------------------------------- steps

    def start(self) -> str:
        """Press the button; returns the authorize URL Mastodon redirects to."""
        started = time.monotonic()
        page = self._send("GET", self.base + SIGN_IN_PATH, "start")
        if page.status_code != 200:
            raise LoginFailed("start", f"{SIGN_IN_PATH} answered HTTP {page.status_code}")
        token = csrf_token_from(page.text)
        if not token:
            raise LoginFailed("start", f"{SIGN_IN_PATH} has no csrf-token meta tag")
        response = self._send("POST", self.base + START_PATH, "start",
                               data={"authenticity_token": token},
                               headers={"Referer": self.base + SIGN_IN_PATH,
                                        "Origin": self.base})
        self._timed("start", started)
        if response.status_code not in (301, 302, 303):
            raise LoginFailed("start", f"POST {START_PATH} answered HTTP {response.status_code} "
                              "instead of redirecting to the provider")
        target = self._location(response)
        if urlsplit(target).hostname == self.domain:
            raise LoginFailed("start", f"Mastodon did not start the OIDC login: {self.flash('start')}")
        return target

    def authenticate(self, authorize_url: str) -> str:
        """From the authorize URL through Authentik's flows; returns the callback URL."""
        started = time.monotonic()
        url = authorize_url
        try:
            for _ in range(self.max_hops):
                if urlsplit(url).hostname == self.domain:
                    return url
                flow = flow_location(url)
                response = self._send("GET", url, "authorize")
                if flow is not None and response.status_code == 200:
                    url = self.executor.run(*flow)
                    continue
                if response.status_code in (301, 302, 303, 307, 308):
                    url = self._location(response)
                    continue
                detail = error_page(response.text) or "no error page"
                raise LoginFailed("authorize", f"Authentik answered HTTP {response.status_code} at "
                                  f"{urlsplit(url).path}: {detail}")
            raise LoginFailed("authorize", f"no way back to Mastodon after {self.max_hops} hops")
        except FlowStopped as stop:
            raise LoginFailed("flow", str(stop), stage=stop.stage, kind=stop.kind,
                              stages=stop.stages) from None
        finally:
            self._timed("authentik", started)

    def finish(self, callback_url: str) -> WebSession:
        """Deliver the callback; returns the web session Mastodon established."""
        started = time.monotonic()
        try:
            if urlsplit(callback_url).path != CALLBACK_PATH:
                raise LoginFailed("callback", f"Authentik sent the browser to "
                                  f"{urlsplit(callback_url).path}, not {CALLBACK_PATH}")
            response = self._send("GET", callback_url, "callback")
            if response.status_code >= 500:
                raise LoginFailed("callback", f"Mastodon answered HTTP {response.status_code} "
                                  "at the callback")
            if response.status_code not in (301, 302, 303):
                raise LoginFailed("callback", f"the callback answered HTTP {response.status_code} "
                                  "instead of redirecting")
            landing = self._location(response)
            if urlsplit(landing).path == SIGN_IN_PATH:
                raise LoginFailed("callback", f"Mastodon rejected the callback: {self.flash('callback')}")
            session = self.home()
            if not session.is_signed_in:
                raise LoginFailed("session", f"the callback redirected to {urlsplit(landing).path} "
                                  "but the home page shows no signed-in user")
            return session
        finally:
            self._timed("callback", started)

    def home(self) -> WebSession:
        """The signed-in state of this cookie jar, from the home page's initial state."""
        response = self._send("GET", self.base + "/", "session")
        if response.status_code != 200:
            raise LoginFailed("session", f"the home page answered HTTP {response.status_code}")
        return web_session(initial_state(response.text))

    def login(self) -> WebSession:
        return self.finish(self.authenticate(self.start()))
