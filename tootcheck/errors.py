"""Errors that mean "bad input": the CLI prints them as one line and exits 2."""

from __future__ import annotations


class BadInput(Exception):
    """Input the suite cannot work with: a malformed manifest, a missing file,
    an unreachable cluster, the wrong kube context.

    The message is a single line that tells the operator what to fix. ``detail``
    (optional) is kept verbatim below it: a failed tool's whole error output.
    """

    exit_code = 2

    def __init__(self, message: str, detail: str = "") -> None:
        headline = " ".join(message.split())
        self.headline = headline
        self.detail = detail.rstrip()
        super().__init__(f"{headline}\n{self.detail}" if self.detail else headline)


class KindNotServed(BadInput):
    """The cluster serves no such kind (yet): its CRD is missing or not established."""


class ToolMissing(BadInput):
    """A required external tool (helm, kubectl, kind, docker) is not available."""

    def __init__(self, tool: str, why: str, hint: str = "") -> None:
        text = f"{tool} not found: {why}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)
        self.tool = tool
