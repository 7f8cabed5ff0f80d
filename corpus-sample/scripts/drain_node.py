#!/usr/bin/env python3
"""Safely cordon and drain a Kubernetes worker node.

Used by the KubeNodeNotReady runbook (runbooks/kube-node-not-ready.md).
Unlike a plain ``kubectl drain``, this script:

* evicts pods of critical-path deployments (checkout-api, payments-gateway,
  ledger-worker) one at a time and waits until a replacement is Ready on
  another node before evicting the next one;
* never deletes pods directly, so PodDisruptionBudgets are always respected;
* posts a short audit message to the #platform Slack channel.

Examples::

    python3 scripts/drain_node.py --node ip-10-30-4-17 --dry-run
    python3 scripts/drain_node.py --node ip-10-30-4-17 --reason "INC-2291"
    python3 scripts/drain_node.py --node ip-10-30-4-17 --uncordon
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

log = logging.getLogger("drain_node")

CRITICAL_APPS = frozenset({"checkout-api", "payments-gateway", "ledger-worker"})
SKIP_NAMESPACES = frozenset({"kube-system"})
DEFAULT_TIMEOUT_S = 600
POLL_INTERVAL_S = 5


def kubectl(*args: str, check: bool = True) -> str:
    """Run kubectl with the given arguments and return its stdout.

    The context is taken from ``KUBE_CONTEXT`` (default ``prod-eu1``) so that
    the script cannot accidentally act on whatever context the operator's
    shell happens to have selected.
    """
    context = os.environ.get("KUBE_CONTEXT", "prod-eu1")
    cmd = ["kubectl", "--context", context, *args]
    log.debug("running %s", " ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def list_pods_on_node(node: str) -> list[dict]:
    """Return the pods scheduled on ``node``, excluding DaemonSet pods.

    DaemonSet pods are recreated on the same node immediately, so evicting
    them is pointless; mirror pods (static pods) cannot be evicted at all.
    """
    raw = kubectl("get", "pods", "-A", "-o", "json",
                  "--field-selector", f"spec.nodeName={node}")
    pods = []
    for pod in json.loads(raw)["items"]:
        owners = pod["metadata"].get("ownerReferences", [])
        if any(o["kind"] == "DaemonSet" for o in owners):
            continue
        if "kubernetes.io/config.mirror" in pod["metadata"].get("annotations", {}):
            continue
        if pod["metadata"]["namespace"] in SKIP_NAMESPACES:
            continue
        pods.append(pod)
    return pods


def is_critical(pod: dict) -> bool:
    """True if the pod belongs to a payments critical-path application."""
    labels = pod["metadata"].get("labels", {})
    return labels.get("app") in CRITICAL_APPS


def notify_slack(text: str) -> None:
    """Post ``text`` to #platform via the incoming webhook, if configured.

    Failures are logged and ignored: a broken webhook must never block a
    drain during an incident.
    """
    url = os.environ.get("PLATFORM_SLACK_WEBHOOK")
    if not url:
        log.info("PLATFORM_SLACK_WEBHOOK not set; skipping Slack message")
        return
    body = json.dumps({"text": text}).encode()
    req = urllib.request.Request(url, data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=5)
    except OSError as exc:  # network errors, HTTP errors
        log.warning("could not post to Slack: %s", exc)


@dataclass
class NodeDrainer:
    """Cordons a node and evicts its pods in a safe order.

    Non-critical pods are evicted first, all at once. Critical pods are
    evicted one at a time; after each eviction the drainer waits until the
    owning Deployment has as many Ready replicas as before.
    """

    node: str
    reason: str = "manual drain"
    timeout_s: int = DEFAULT_TIMEOUT_S
    dry_run: bool = False
    check_critical: bool = True
    evicted: list[str] = field(default_factory=list)

    def cordon(self) -> None:
        """Mark the node unschedulable."""
        if self.dry_run:
            log.info("[dry-run] would cordon %s", self.node)
            return
        kubectl("cordon", self.node)
        log.info("cordoned %s", self.node)

    def uncordon(self) -> None:
        """Mark the node schedulable again."""
        kubectl("uncordon", self.node)
        notify_slack(f":white_check_mark: uncordoned `{self.node}`")

    def evict(self, pod: dict) -> None:
        """Evict a single pod through the Eviction API (respects PDBs).

        ``kubectl drain`` with a pod selector is used because it implements
        the eviction retry loop for PDB-blocked pods (HTTP 429).
        """
        ns = pod["metadata"]["namespace"]
        name = pod["metadata"]["name"]
        if self.dry_run:
            log.info("[dry-run] would evict %s/%s", ns, name)
            return
        kubectl("drain", self.node, "--ignore-daemonsets", "--delete-emptydir-data",
                f"--pod-selector=metadata.name={name}", f"--timeout={self.timeout_s}s")
        self.evicted.append(f"{ns}/{name}")

    def wait_for_replacement(self, pod: dict) -> None:
        """Block until the pod's Deployment is fully available again.

        Raises ``TimeoutError`` after ``timeout_s`` seconds; the operator then
        has to decide whether to continue with ``--skip-critical-check``.
        """
        if self.dry_run or not self.check_critical:
            return
        ns = pod["metadata"]["namespace"]
        app = pod["metadata"]["labels"]["app"]
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            status = json.loads(kubectl("-n", ns, "get", "deploy", app, "-o", "json"))["status"]
            if status.get("availableReplicas", 0) >= status.get("replicas", 0):
                return
            time.sleep(POLL_INTERVAL_S)
        raise TimeoutError(f"{ns}/{app} did not recover within {self.timeout_s}s")

    def run(self) -> None:
        """Cordon, then evict non-critical pods, then critical pods one by one."""
        notify_slack(f":construction: draining `{self.node}`: {self.reason}")
        self.cordon()
        pods = list_pods_on_node(self.node)
        normal = [p for p in pods if not is_critical(p)]
        critical = [p for p in pods if is_critical(p)]
        log.info("%d pods to evict (%d critical)", len(pods), len(critical))
        for pod in normal:
            self.evict(pod)
        for pod in critical:
            self.evict(pod)
            self.wait_for_replacement(pod)
        notify_slack(f":white_check_mark: drained `{self.node}` "
                     f"({len(self.evicted)} pods evicted)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--node", required=True, help="node name, e.g. ip-10-30-4-17")
    p.add_argument("--reason", default="manual drain", help="shown in the Slack audit message")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S,
                   help="seconds to wait per critical pod (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="print what would happen")
    p.add_argument("--skip-critical-check", action="store_true",
                   help="do not wait for critical deployments to recover (dangerous)")
    p.add_argument("--uncordon", action="store_true", help="only uncordon the node and exit")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    drainer = NodeDrainer(node=args.node, reason=args.reason, timeout_s=args.timeout,
                          dry_run=args.dry_run, check_critical=not args.skip_critical_check)
    if args.uncordon:
        drainer.uncordon()
        return 0
    try:
        drainer.run()
    except TimeoutError as exc:
        log.error("%s; node stays cordoned, remaining pods not evicted", exc)
        return 2
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
