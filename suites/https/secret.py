"""Read the certificate parts of the cert-manager Secret ``kirchner-social-tls``.

Thin over the ``kubernetes`` client: ``tls.crt`` and ``ca.crt`` are decoded and
returned; ``tls.key`` is never decoded, kept or printed. Every failure becomes
:class:`SecretUnreadable` with a one-line message.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TLS_SECRET = "kirchner-social-tls"  # Ingress spec.tls[].secretName, filled by cert-manager
KUBE_TIMEOUT_S = 20.0


class SecretUnreadable(Exception):
    """The Secret could not be read or holds no certificate (one-line message)."""


@dataclass(frozen=True)
class TlsSecret:
    tls_crt: bytes
    ca_crt: bytes | None  # set by cert-manager's CA issuer; absent for ACME issuers


def tls_secret_from_data(data: Mapping[str, str] | None, where: str) -> TlsSecret:
    """The certificate parts of a kubernetes.io/tls Secret's base64 ``data``.

    >>> tls_secret_from_data({"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"}, "s").tls_crt
    b'CERT'
    """
    data = data or {}

    def decode(key: str) -> bytes | None:
        if not data.get(key):
            return None
        try:
            return base64.b64decode(data[key], validate=True)
        except (binascii.Error, ValueError):
            raise SecretUnreadable(f"{where}: {key} is not valid base64") from None

    tls_crt = decode("tls.crt")
    if not tls_crt:
        raise SecretUnreadable(f"{where} has no tls.crt (has cert-manager issued the certificate?)")
    return TlsSecret(tls_crt=tls_crt, ca_crt=decode("ca.crt"))


def read_tls_secret(
    kubeconfig: Path,
    context: str | None,
    namespace: str,
    name: str = TLS_SECRET,
    *,
    timeout: float = KUBE_TIMEOUT_S,
) -> TlsSecret:
    """Read Secret ``namespace/name`` through ``kubeconfig`` (and ``context``)."""
    from kubernetes import config
    from kubernetes.client.exceptions import ApiException

    from tootcheck.kube.client import Kube, api_path

    where = f"Secret {namespace}/{name}"
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig), context=context,
                                            persist_config=False)
        with api:
            secret = Kube(api, context or "", kubeconfig).get_json(
                api_path("v1", "secrets", namespace, name), timeout=timeout)
    except ApiException as exc:
        raise SecretUnreadable(f"cannot read {where}: HTTP {exc.status} {exc.reason}") from None
    except Exception as exc:  # kubeconfig errors, unreachable API server
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise SecretUnreadable(f"cannot read {where} via {kubeconfig}: "
                               f"{type(exc).__name__}: {first}") from None
    return tls_secret_from_data(secret.get("data") if isinstance(secret, dict) else None, where)
