"""The types a rule sees: the :class:`Subject` it is evaluated on, the :class:`Context`
of the run, and the :class:`Hit` it yields.

They live apart from the engine (which runs rules) and the registry (which declares
them), so both import from here and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tootcheck.policy.bundle import Bundle, FieldPath, K8sObject
from tootcheck.policy.config import PolicyConfig
from tootcheck.policy.envmerge import MergedEnv, merge_env
from tootcheck.policy.k8s import Container, containers_of
from tootcheck.policy.schema import SCHEMA_DIR
from tootcheck.versions import KUBERNETES


@dataclass(frozen=True)
class Hit:
    """What a rule yields: one thing wrong, with the field path it concerns."""

    message: str
    path: FieldPath = ()
    container: str | None = None  # defaults to the subject's container


@dataclass(eq=False, slots=True)  # one per rule x object: many (not frozen: 3x faster made)
class Subject:
    """What a rule is evaluated on: an object, or one container of a workload."""

    obj: K8sObject
    container: Container | None
    bundle: Bundle

    @property
    def object_id(self) -> str:
        return self.obj.id

    @property
    def id(self) -> str:
        return subject_id(self.obj.id, self.container.name if self.container else None,
                          self.bundle.label)


def subject_id(object_id: str, container: str | None, label: str) -> str:
    """A subject's id: ``<object id>[:<container>][@<bundle label>]``."""
    text = object_id if container is None else f"{object_id}:{container}"
    return f"{text}@{label}" if label else text


@dataclass
class Context:
    """One bundle under evaluation, with the run's settings. ``ctx.bundle`` is the index
    rules share: objects by kind (``of_kind``), by kind/namespace/name (``find``), by
    namespace (``in_namespace``), and ``cache`` for derived lookups built once."""

    bundle: Bundle
    config: PolicyConfig
    kube_version: str = KUBERNETES
    schema_dir: Path = SCHEMA_DIR

    @property
    def mode(self) -> str:
        return self.bundle.mode

    def env(self, c: Container) -> MergedEnv:
        return merge_env(c, self.bundle, self.config)

    def containers(self, obj: K8sObject) -> list[Container]:
        return containers_of(self.bundle, obj)


RuleFn = Callable[[Subject, Context], Iterable[Hit]]
Applies = Callable[[Subject, Context], bool]
