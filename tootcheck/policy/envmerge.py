"""A container's effective environment, merged as the kubelet does: ``envFrom``
sources in order (later wins), then ``env[]`` (wins over envFrom).

ConfigMap values and literal ``env[].value`` are kept; Secret entries carry the
key only, never a value. References that resolve to nothing are recorded so the
resolution rule can report them. Offline, a Secret that is neither rendered nor
declared under external_secrets is assumed to provide the keys read from it (for
envFrom: Mastodon's secret settings), and the assumption is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from tootcheck.policy.bundle import Bundle, FieldPath, K8sObject
from tootcheck.policy.config import MASTODON_SECRET_KEYS, PolicyConfig
from tootcheck.policy.k8s import Container


# One per variable of every container: many. Not frozen (nothing changes one): a frozen
# dataclass is built through object.__setattr__, four times slower.
@dataclass(slots=True)
class EnvVar:
    name: str
    source: str  # "literal" | "configmap" | "secret" | "field" | "resource"
    path: FieldPath  # env[i] or envFrom[i] inside the workload
    ref: str | None = None  # ConfigMap/Secret name
    key: str | None = None  # key inside that object
    value: str | None = None  # literal or ConfigMap value; never a Secret value
    via_env_from: bool = False
    optional: bool = False

    @property
    def from_secret(self) -> bool:
        return self.source == "secret"

    @property
    def known_value(self) -> bool:
        return self.value is not None

    def describe(self) -> str:
        if self.source == "literal":
            return "env[] literal"
        if self.source in ("configmap", "secret"):
            kind = "ConfigMap" if self.source == "configmap" else "Secret"
            how = "envFrom" if self.via_env_from else f"{kind[0].lower()}{kind[1:]}KeyRef"
            return f"{kind} {self.ref} ({how})"
        return self.source


@dataclass(frozen=True)
class Unresolved:
    kind: str  # ConfigMap | Secret
    name: str
    key: str | None
    path: FieldPath
    optional: bool
    why: str


@dataclass(frozen=True)
class Assumed:
    """An unrendered, undeclared Secret taken (offline) to provide ``keys``."""

    name: str
    keys: tuple[str, ...]
    path: FieldPath


@dataclass
class MergedEnv:
    vars: dict[str, EnvVar] = field(default_factory=dict)  # effective entries
    definitions: list[EnvVar] = field(default_factory=list)  # every definition, in order
    env_from: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) in order
    unresolved: list[Unresolved] = field(default_factory=list)
    assumed: list[Assumed] = field(default_factory=list)

    def get(self, name: str) -> EnvVar | None:
        return self.vars.get(name)

    def value(self, name: str) -> str | None:
        var = self.vars.get(name)
        return var.value if var else None


def secret_keys(obj: K8sObject) -> set[str]:
    keys: set[str] = set()
    for part in ("data", "stringData"):
        section = obj.data.get(part)
        if isinstance(section, dict):
            keys.update(str(k) for k in section)
    return keys


def configmap_data(obj: K8sObject) -> dict[str, str]:
    data = obj.data.get("data")
    if not isinstance(data, dict):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in data.items()}


def _data_of(obj: K8sObject, bundle: Bundle) -> dict[str, str]:
    """:func:`configmap_data`, once per ConfigMap of the bundle (every container that
    reads it merges it)."""
    key = ("configmap-data", id(obj))
    found = bundle.cache.get(key)
    if found is None:
        found = bundle.cache[key] = configmap_data(obj)
    return cast("dict[str, str]", found)


ENVS = "merged-envs"  # bundle.cache key of the merged envs (a run may drop them)


def merge_env(c: Container, bundle: Bundle, config: PolicyConfig) -> MergedEnv:
    envs = bundle.cache.get(ENVS)
    if envs is None:
        envs = bundle.cache[ENVS] = {}
    found = envs.get(id(c))
    if found is None:
        found = envs[id(c)] = _merge(c, bundle, config)
    return cast(MergedEnv, found)


def _merge(c: Container, bundle: Bundle, config: PolicyConfig) -> MergedEnv:
    out = MergedEnv()
    ns = c.obj.namespace
    for i, entry in enumerate(c.data.get("envFrom") or []):
        if not isinstance(entry, dict):
            continue
        prefix = str(entry.get("prefix") or "")
        path = c.field("envFrom", i)
        for ref_key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            ref = entry.get(ref_key)
            if not isinstance(ref, dict):
                continue
            name = str(ref.get("name", ""))
            optional = bool(ref.get("optional"))
            out.env_from.append((kind, name))
            found = bundle.find(kind, ns, name)
            if kind == "ConfigMap":
                if found is None:
                    if not (config.is_external_configmap(ns, name) and bundle.mode == "offline"):
                        out.unresolved.append(Unresolved(kind, name, None, path, optional,
                                                         _missing(bundle, "ConfigMap")))
                    continue
                for k, v in _data_of(found, bundle).items():
                    _define(out, EnvVar(prefix + k, "configmap", path, name, k, v, True,
                                        optional))
            else:
                keys: set[str] | None
                if found is not None:
                    keys = secret_keys(found)
                elif bundle.mode == "offline" and issued_secret(bundle, ns, name):
                    keys = set(CERT_KEYS)
                elif bundle.mode == "offline" and \
                        (declared := config.external_secret_keys(ns, name)) is not None:
                    keys = set(declared)
                elif bundle.mode == "offline":
                    # Sealed, external or created by hand: assume it holds Mastodon's
                    # secret settings that no other source of the container defines
                    # (reported by MSTDN-SECRET-006, checked live by MSTDN-SECRET-004).
                    others = _defined_elsewhere(c, bundle, name)
                    keys = {k for k in MASTODON_SECRET_KEYS if prefix + k not in others}
                    out.assumed.append(Assumed(name, tuple(sorted(keys)), path))
                else:
                    out.unresolved.append(Unresolved(kind, name, None, path, optional,
                                                     _missing(bundle, "Secret")))
                    continue
                for k in sorted(keys):
                    _define(out, EnvVar(prefix + k, "secret", path, name, k, None, True, optional))
    for i, entry in enumerate(c.data.get("env") or []):
        if not isinstance(entry, dict) or "name" not in entry:
            continue
        name = str(entry["name"])
        path = c.field("env", i)
        vf = entry.get("valueFrom")
        if not isinstance(vf, dict):
            value = entry.get("value")
            _define(out, EnvVar(name, "literal", path,
                                value=None if value is None else str(value)))
            continue
        if isinstance(vf.get("configMapKeyRef"), dict):
            ref = vf["configMapKeyRef"]
            cm_name, k = str(ref.get("name", "")), str(ref.get("key", ""))
            optional = bool(ref.get("optional"))
            found = bundle.find("ConfigMap", ns, cm_name)
            if found is None:
                if not (config.is_external_configmap(ns, cm_name) and bundle.mode == "offline"):
                    out.unresolved.append(Unresolved("ConfigMap", cm_name, k, path, optional,
                                                     _missing(bundle, "ConfigMap")))
            elif k not in configmap_data(found):
                out.unresolved.append(Unresolved("ConfigMap", cm_name, k, path, optional,
                                                 f"has no key {k}"))
            _define(out, EnvVar(name, "configmap", path, cm_name, k,
                                configmap_data(found).get(k) if found else None, False, optional))
        elif isinstance(vf.get("secretKeyRef"), dict):
            ref = vf["secretKeyRef"]
            s_name, k = str(ref.get("name", "")), str(ref.get("key", ""))
            optional = bool(ref.get("optional"))
            found = bundle.find("Secret", ns, s_name)
            if found is not None:
                if k not in secret_keys(found):
                    out.unresolved.append(Unresolved("Secret", s_name, k, path, optional,
                                                     f"has no key {k}"))
            elif bundle.mode == "offline" and issued_secret(bundle, ns, s_name):
                if k not in CERT_KEYS:
                    out.unresolved.append(Unresolved("Secret", s_name, k, path, optional,
                                                     f"is issued by a Certificate and has no "
                                                     f"key {k}"))
            elif (declared := config.external_secret_keys(ns, s_name)) is not None and \
                    bundle.mode == "offline":
                if k not in declared:
                    out.unresolved.append(Unresolved(
                        "Secret", s_name, k, path, optional,
                        f"is external and declares no key {k} in the policy config"))
            elif bundle.mode == "offline":
                out.assumed.append(Assumed(s_name, (k,), path))
            else:
                out.unresolved.append(Unresolved("Secret", s_name, k, path, optional,
                                                 _missing(bundle, "Secret")))
            _define(out, EnvVar(name, "secret", path, s_name, k, None, False, optional))
        elif isinstance(vf.get("fieldRef"), dict):
            _define(out, EnvVar(name, "field", path))
        elif isinstance(vf.get("resourceFieldRef"), dict):
            _define(out, EnvVar(name, "resource", path))
    return out


def _defined_elsewhere(c: Container, bundle: Bundle, secret: str) -> set[str]:
    """Names the container gets from its rendered sources other than Secret ``secret``."""
    names = {str(e["name"]) for e in c.data.get("env") or [] if isinstance(e, dict) and "name" in e}
    for entry in c.data.get("envFrom") or []:
        if not isinstance(entry, dict):
            continue
        prefix = str(entry.get("prefix") or "")
        for ref_key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            ref = entry.get(ref_key)
            if not isinstance(ref, dict) or (kind == "Secret" and ref.get("name") == secret):
                continue
            found = bundle.find(kind, c.obj.namespace, str(ref.get("name", "")))
            if found is not None:
                keys = configmap_data(found) if kind == "ConfigMap" else secret_keys(found)
                names.update(prefix + k for k in keys)
    return names


def issued_secret(bundle: Bundle, namespace: str | None, name: str) -> bool:
    """A Secret that a rendered cert-manager Certificate writes (keys tls.crt, tls.key, ca.crt)."""
    return any(c.get("spec", "secretName") == name and c.group == "cert-manager.io"
               for c in bundle.in_namespace("Certificate", namespace))


CERT_KEYS = ("tls.crt", "tls.key", "ca.crt")


def _missing(bundle: Bundle, kind: str) -> str:
    if bundle.mode == "live":
        return "not found in the cluster"
    return f"not rendered and not an allow-listed external {kind}"


def _define(out: MergedEnv, var: EnvVar) -> None:
    out.definitions.append(var)
    out.vars[var.name] = var
