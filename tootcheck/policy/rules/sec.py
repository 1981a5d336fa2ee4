"""Pod security (MSTDN-SEC-*): the Pod Security Standards, read-only root, namespace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tootcheck.model import Severity
from tootcheck.policy.k8s import (
    RAILS_ROLES,
    WORKLOAD_KINDS,
    Container,
    mount_for_path,
    pod_annotations,
    pod_spec,
    pod_spec_path,
)
from tootcheck.policy.registry import rule
from tootcheck.policy.types import Context, Hit, Subject

E, W = Severity.ERROR, Severity.WARN

PSS_REFS = ("Pod Security Standards (kubernetes/website content/en/docs/concepts/security/"
            "pod-security-standards.md)",)
BASELINE_CAPS = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"})
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t",
                           "container_engine_t"})
RESTRICTED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                "persistentVolumeClaim", "projected", "secret"})


def _sc(data: dict[str, Any]) -> dict[str, Any]:
    sc = data.get("securityContext")
    return sc if isinstance(sc, dict) else {}


def _all_pod_containers(s: Subject, ctx: Context) -> list[tuple[dict[str, Any], tuple[Any, ...]]]:
    out = [(c.data, c.path) for c in ctx.containers(s.obj)]
    spec_path = pod_spec_path(s.obj) or ()
    for i, c in enumerate((pod_spec(s.obj) or {}).get("ephemeralContainers") or []):
        if isinstance(c, dict):
            out.append((c, (*spec_path, "ephemeralContainers", i)))
    return out


@rule("MSTDN-SEC-001", E, "Pods meet the Pod Security Standards baseline profile",
      profile="baseline", kinds=WORKLOAD_KINDS,
      remediation="Remove the host namespace, privileged flag, added capability, hostPath "
                  "volume, hostPort, unsafe sysctl or custom AppArmor/SELinux/procMount/"
                  "seccomp setting named in the message.",
      refs=(*PSS_REFS, "Kyverno pod-security/baseline/*", "Checkov CKV_K8S_16-19/CKV_K8S_26",
            "Polaris hostIPCSet/hostPIDSet/hostNetworkSet/hostPortSet/runAsPrivileged"))
def pss_baseline(s: Subject, ctx: Context) -> Iterator[Hit]:
    """The baseline profile forbids the known privilege escalations: host namespaces,
    privileged containers, extra capabilities, hostPath volumes, host ports, unsafe
    sysctls and custom AppArmor, SELinux, procMount and seccomp settings: a compromised
    container that has one of them owns the node and every Secret on it."""
    spec = pod_spec(s.obj) or {}
    sp = pod_spec_path(s.obj) or ()
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) is True:
            yield Hit(f"{key} is true", (*sp, key))
    for i, vol in enumerate(spec.get("volumes") or []):
        if isinstance(vol, dict) and "hostPath" in vol:
            yield Hit(f"volume {vol.get('name')} is a hostPath", (*sp, "volumes", i, "hostPath"))
    psc = _sc(spec)
    yield from _baseline_sc(psc, (*sp, "securityContext"), None)
    for i, sysctl in enumerate(psc.get("sysctls") or []):
        if isinstance(sysctl, dict) and sysctl.get("name") not in SAFE_SYSCTLS:
            yield Hit(f"sysctl {sysctl.get('name')} is not in the safe set",
                      (*sp, "securityContext", "sysctls", i))
    for key, value in pod_annotations(s.obj).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and \
                value != "runtime/default" and not str(value).startswith("localhost/"):
            yield Hit(f"AppArmor annotation {key} is {value}", ())
    for data, path in _all_pod_containers(s, ctx):
        cname = str(data.get("name", "?"))
        csc = _sc(data)
        if csc.get("privileged") is True:
            yield Hit("privileged is true", (*path, "securityContext", "privileged"), cname)
        added = ((csc.get("capabilities") or {}).get("add")) or []
        extra = sorted(str(cap) for cap in added if str(cap) not in BASELINE_CAPS)
        if extra:
            yield Hit(f"adds capabilities {', '.join(extra)}",
                      (*path, "securityContext", "capabilities", "add"), cname)
        if csc.get("procMount") not in (None, "Default"):
            yield Hit(f"procMount is {csc.get('procMount')}",
                      (*path, "securityContext", "procMount"), cname)
        yield from _baseline_sc(csc, (*path, "securityContext"), cname)
        for j, port in enumerate(data.get("ports") or []):
            if isinstance(port, dict) and port.get("hostPort"):
                yield Hit(f"declares hostPort {port['hostPort']}", (*path, "ports", j, "hostPort"),
                          cname)


def _baseline_sc(sc: dict[str, Any], path: tuple[Any, ...], cname: str | None) -> Iterator[Hit]:
    seccomp = (sc.get("seccompProfile") or {}).get("type")
    if seccomp == "Unconfined":
        yield Hit("seccompProfile.type is Unconfined", (*path, "seccompProfile", "type"), cname)
    apparmor = (sc.get("appArmorProfile") or {}).get("type")
    if apparmor not in (None, "RuntimeDefault", "Localhost"):
        yield Hit(f"appArmorProfile.type is {apparmor}", (*path, "appArmorProfile", "type"), cname)
    se = sc.get("seLinuxOptions") or {}
    if se.get("type", "") not in SELINUX_TYPES:
        yield Hit(f"seLinuxOptions.type is {se.get('type')}", (*path, "seLinuxOptions", "type"),
                  cname)
    for key in ("user", "role"):
        if se.get(key):
            yield Hit(f"seLinuxOptions.{key} is set", (*path, "seLinuxOptions", key), cname)
    if (sc.get("windowsOptions") or {}).get("hostProcess") is True:
        yield Hit("windowsOptions.hostProcess is true", (*path, "windowsOptions", "hostProcess"),
                  cname)


def _effective(c: Container, key: str) -> Any:
    value = _sc(c.data).get(key)
    if value is None:
        value = _sc(pod_spec(c.obj) or {}).get(key)
    return value


@rule("MSTDN-SEC-002", E, "Containers meet the Pod Security Standards restricted profile",
      profile="hardened", kinds=WORKLOAD_KINDS, scope="container",
      remediation="Set allowPrivilegeEscalation: false, runAsNonRoot: true with a non-zero "
                  "runAsUser, capabilities.drop: [ALL] and seccompProfile.type: RuntimeDefault "
                  "(Mastodon images run as 991, postgres and redis as 999).",
      refs=(*PSS_REFS, "Kyverno pod-security/restricted/*", "kube-linter run-as-non-root/"
            "privilege-escalation-container", "Polaris runAsRootAllowed/"
            "privilegeEscalationAllowed", "Checkov CKV_K8S_20/CKV_K8S_23/CKV_K8S_28/CKV_K8S_31"))
def pss_restricted(s: Subject, ctx: Context) -> Iterator[Hit]:
    """The namespace enforces the restricted profile, so a container that does not meet
    it is refused at admission; catch it before apply, naming the field. Depends on the
    cluster: only a namespace labelled enforce=restricted refuses it."""
    c = s.container
    assert c is not None
    sc_path = c.field("securityContext")
    if _sc(c.data).get("allowPrivilegeEscalation") is not False:
        yield Hit("securityContext.allowPrivilegeEscalation is not false",
                  (*sc_path, "allowPrivilegeEscalation"))
    if _effective(c, "runAsNonRoot") is not True:
        yield Hit("runAsNonRoot is not true (container or pod securityContext)",
                  (*sc_path, "runAsNonRoot"))
    if _effective(c, "runAsUser") == 0:
        yield Hit("runAsUser is 0", (*sc_path, "runAsUser"))
    caps = _sc(c.data).get("capabilities") or {}
    if "ALL" not in [str(x) for x in caps.get("drop") or []]:
        yield Hit("capabilities.drop does not include ALL", (*sc_path, "capabilities", "drop"))
    extra = [str(x) for x in caps.get("add") or [] if str(x) != "NET_BIND_SERVICE"]
    if extra:
        yield Hit(f"capabilities.add has {', '.join(extra)}", (*sc_path, "capabilities", "add"))
    seccomp = (_effective(c, "seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        yield Hit(f"seccompProfile.type is {seccomp or 'unset'}, not RuntimeDefault",
                  (*sc_path, "seccompProfile"))


@rule("MSTDN-SEC-003", E, "Volumes use only the restricted profile's volume types",
      profile="hardened", kinds=WORKLOAD_KINDS,
      remediation="Replace the volume with a PersistentVolumeClaim (for NFS: a static "
                  "PersistentVolume with spec.nfs, or the nfs-csi StorageClass).",
      refs=(*PSS_REFS, "Kyverno pod-security/restricted/restrict-volume-types"))
def volume_types(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Restricted admits configMap, csi, downwardAPI, emptyDir, ephemeral,
    persistentVolumeClaim, projected and secret volumes only; an inline nfs: volume is
    refused, so NFS data must come through a PV/PVC. Depends on the cluster: only a
    namespace labelled enforce=restricted refuses it (MSTDN-PV-005 is the storage view)."""
    sp = pod_spec_path(s.obj) or ()
    for i, vol in enumerate((pod_spec(s.obj) or {}).get("volumes") or []):
        if not isinstance(vol, dict):
            continue
        kinds = [k for k in vol if k != "name"]
        bad = [k for k in kinds if k not in RESTRICTED_VOLUMES]
        if bad:
            yield Hit(f"volume {vol.get('name')} is of type {', '.join(bad)}",
                      (*sp, "volumes", i, bad[0]))


_TMP_PATHS = ("/opt/mastodon/tmp", "/tmp")


@rule("MSTDN-SEC-004", W, "Root filesystems are read-only, with writable scratch mounts",
      profile="hardened", kinds=WORKLOAD_KINDS, scope="container",
      remediation="Set readOnlyRootFilesystem: true and mount emptyDir volumes at "
                  "/opt/mastodon/tmp and /tmp in the Rails containers.",
      refs=("kube-score container-security-context-readonlyrootfilesystem",
            "Polaris notReadOnlyRootFilesystem", "kube-linter no-read-only-root-fs",
            "Checkov CKV_K8S_22", "Kyverno best-practices/require-ro-rootfs"))
def read_only_root(s: Subject, ctx: Context) -> Iterator[Hit]:
    """A read-only root filesystem keeps an intruder from altering the image; the Rails
    processes still need writable tmp directories (pids, caches, uploads)."""
    c = s.container
    assert c is not None
    if _sc(c.data).get("readOnlyRootFilesystem") is not True:
        yield Hit("securityContext.readOnlyRootFilesystem is not true",
                  c.field("securityContext", "readOnlyRootFilesystem"))
        return
    if c.role in RAILS_ROLES:
        for path in _TMP_PATHS:
            m = mount_for_path(c, path)
            if m is None or str(m.get("mountPath")) == "/" or m.get("readOnly"):
                yield Hit(f"root filesystem is read-only but nothing writable is mounted at "
                          f"{path}", c.field("volumeMounts"))


@rule("MSTDN-SEC-005", W, "Objects live in a dedicated namespace that enforces restricted",
      profile="hardened", kinds=None,
      remediation="Deploy into the dedicated namespace (not default) and label it "
                  "pod-security.kubernetes.io/enforce: restricted.",
      refs=("Pod Security Admission namespace labels", "Checkov CKV_K8S_21",
            "Kyverno best-practices/disallow-default-namespace"))
def namespace_isolation(s: Subject, ctx: Context) -> Iterator[Hit]:
    """Pod Security Admission only enforces what the namespace label asks for, and the
    default namespace is shared with everything that forgot to name one. Depends on the
    cluster (its namespaces and admission configuration)."""
    obj = s.obj
    if obj.kind == "Namespace":
        labels = obj.labels
        if obj.name == "default":
            yield Hit("the default namespace is not a dedicated namespace", ("metadata", "name"))
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            yield Hit("namespace does not carry pod-security.kubernetes.io/enforce: restricted",
                      ("metadata", "labels"))
    elif obj.declared_namespace == "default":
        yield Hit("object is in the default namespace", ("metadata", "namespace"))
