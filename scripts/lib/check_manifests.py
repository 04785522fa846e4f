"""Offline checks of deploy/kubernetes/ that a schema cannot make (scripts/k8s-validate.sh).

kubernetes-validate checks the built-in kinds against the Kubernetes schemas; this adds:
  * every file parses and every document names apiVersion, kind and metadata.name;
  * KEDA's ScaledObject (no schema of it ships offline): the fields its CRD requires
    (spec.scaleTargetRef.name, spec.triggers[].type and .metadata with string values),
    replica bounds, and a target that is a Deployment of these manifests;
  * kustomization.yaml lists every manifest of the directory;
  * Deployments: every container has resource requests and readiness and liveness probes;
    Services and PodDisruptionBudgets select the pods of a Deployment;
  * the grace periods: the worker Deployment's terminationGracePeriodSeconds and
    docker-compose.yml's worker stop_grace_period exceed WORKER_SHUTDOWN_TIMEOUT_SECONDS plus
    the 5 s hand-back of unfinished tasks (worker/src/lib.rs).

Usage: python check_manifests.py DIR COMPOSE_FILE. Prints each problem, exits 1 if any.
"""

import os
import re
import sys

import yaml

# worker/src/lib.rs: after the drain timeout, unfinished tasks are handed back for up to 5 s.
HAND_BACK_SECONDS = 5

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def load(directory):
    docs = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as f:
                parsed = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            problem(name, f"does not parse: {e}")
            continue
        for doc in parsed:
            if not isinstance(doc, dict):
                problem(name, "a document is not a mapping")
                continue
            if name != "kustomization.yaml":
                for field in ("apiVersion", "kind"):
                    if not isinstance(doc.get(field), str):
                        problem(name, f"a document has no {field}")
                if not (doc.get("metadata") or {}).get("name"):
                    problem(name, f"{doc.get('kind')} has no metadata.name")
            docs.append((name, doc))
    return docs


def of_kind(docs, kind):
    return [(n, d) for n, d in docs if d.get("kind") == kind]


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_scaled_object(name, so, deployments):
    where = f"{name} ScaledObject/{so['metadata'].get('name')}"
    if so.get("apiVersion") != "keda.sh/v1alpha1":
        problem(where, f"apiVersion {so.get('apiVersion')!r}, KEDA v2 serves keda.sh/v1alpha1")
    spec = so.get("spec")
    if not isinstance(spec, dict):
        problem(where, "has no spec")
        return
    target = spec.get("scaleTargetRef")
    if not isinstance(target, dict) or not isinstance(target.get("name"), str):
        problem(where, "spec.scaleTargetRef.name is required")
    else:
        kind = target.get("kind", "Deployment")
        if kind != "Deployment" or target["name"] not in deployments:
            problem(where, f"scales {kind}/{target['name']}, which these manifests do not define")
    bounds = {}
    for field in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
        value = spec.get(field)
        if value is not None and (not isinstance(value, int) or value < 0):
            problem(where, f"spec.{field} must be a non-negative integer")
        bounds[field] = value
    lo, hi = bounds["minReplicaCount"], bounds["maxReplicaCount"]
    if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
        problem(where, f"minReplicaCount {lo} is above maxReplicaCount {hi}")
    triggers = spec.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        problem(where, "spec.triggers must list at least one trigger")
        return
    for i, trigger in enumerate(triggers):
        at = f"{where} triggers[{i}]"
        if not isinstance(trigger, dict) or not isinstance(trigger.get("type"), str):
            problem(at, "type is required")
            continue
        metadata = trigger.get("metadata")
        if not isinstance(metadata, dict):
            problem(at, "metadata is required")
            continue
        for key, value in metadata.items():
            if not isinstance(value, str):
                problem(at, f"metadata.{key} must be a string (quote it)")
        if trigger.get("metricType", "AverageValue") not in ("AverageValue", "Value", "Utilization"):
            problem(at, f"metricType {trigger.get('metricType')!r} is not one KEDA knows")
        if trigger["type"] == "prometheus":
            for key in ("serverAddress", "query", "threshold"):
                if not metadata.get(key):
                    problem(at, f"a prometheus trigger needs metadata.{key}")


def seconds(value):
    """A compose duration ("35s", "1m30s") or a number, in seconds."""
    if isinstance(value, (int, float)):
        return value
    if str(value).strip().isdigit():
        return int(value)
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(value).strip())
    if not parts or not any(parts.groups()):
        return None
    return int(parts.group(1) or 0) * 60 + int(parts.group(2) or 0)


def default_of(value):
    """The default of a compose ${VAR:-default} value, else the value itself."""
    m = re.fullmatch(r"\$\{[A-Z_]+:-([^}]*)\}", str(value).strip())
    return m.group(1) if m else value


def check_grace(docs, compose_file):
    config = {}
    for _, cm in of_kind(docs, "ConfigMap"):
        config.update(cm.get("data") or {})
    shutdown = int(config.get("WORKER_SHUTDOWN_TIMEOUT_SECONDS", 25))
    for name, dep in of_kind(docs, "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        if any(c.get("command", [None])[0] == "worker" for c in pod.get("containers", [])):
            grace = pod.get("terminationGracePeriodSeconds", 30)
            if grace <= shutdown + HAND_BACK_SECONDS:
                problem(name, f"terminationGracePeriodSeconds {grace} must exceed "
                              f"WORKER_SHUTDOWN_TIMEOUT_SECONDS {shutdown} + {HAND_BACK_SECONDS}")
    with open(compose_file, encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    worker = compose["services"]["worker"]
    timeout = seconds(default_of(worker["environment"].get("WORKER_SHUTDOWN_TIMEOUT_SECONDS", 25)))
    grace = seconds(default_of(worker.get("stop_grace_period", "10s")))
    if timeout is None or grace is None or grace <= timeout + HAND_BACK_SECONDS:
        problem(os.path.basename(compose_file),
                f"worker stop_grace_period ({grace}s) must exceed "
                f"WORKER_SHUTDOWN_TIMEOUT_SECONDS ({timeout}s) + {HAND_BACK_SECONDS}")


def check_workloads(docs):
    pods = {}
    for name, dep in of_kind(docs, "Deployment"):
        template = dep["spec"]["template"]
        labels = template["metadata"].get("labels", {})
        pods[dep["metadata"]["name"]] = labels
        if not selects(dep["spec"]["selector"].get("matchLabels"), labels):
            problem(name, f"Deployment/{dep['metadata']['name']} selector misses its own pods")
        for c in template["spec"].get("containers", []):
            at = f"{name} container {c.get('name')}"
            if not (c.get("resources") or {}).get("requests"):
                problem(at, "has no resource requests")
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    problem(at, f"has no {probe}")
    for name, svc in of_kind(docs, "Service"):
        if not any(selects(svc["spec"].get("selector"), l) for l in pods.values()):
            problem(name, f"Service/{svc['metadata']['name']} selects no Deployment's pods")
    for name, pdb in of_kind(docs, "PodDisruptionBudget"):
        selector = (pdb["spec"].get("selector") or {}).get("matchLabels")
        if not any(selects(selector, l) for l in pods.values()):
            problem(name, f"PodDisruptionBudget/{pdb['metadata']['name']} selects no Deployment's pods")
    return pods


def check_kustomization(directory, docs):
    listed = set()
    for name, doc in docs:
        if name == "kustomization.yaml":
            listed = set(doc.get("resources", []))
    files = {n for n, _ in docs if n != "kustomization.yaml"}
    for missing in sorted(files - listed):
        problem("kustomization.yaml", f"does not list {missing}")
    for extra in sorted(listed - files):
        problem("kustomization.yaml", f"lists {extra}, which is not in {directory}")


def main():
    directory, compose_file = sys.argv[1], sys.argv[2]
    docs = load(directory)
    if not problems:
        pods = check_workloads(docs)
        for name, so in of_kind(docs, "ScaledObject"):
            check_scaled_object(name, so, pods)
        if not of_kind(docs, "ScaledObject"):
            problem(directory, "no ScaledObject (the worker autoscaler)")
        check_kustomization(directory, docs)
        check_grace(docs, compose_file)
    for p in problems:
        print(f"ERROR {p}")
    if problems:
        return 1
    print(f"ok: {len(docs)} documents in {directory} (ScaledObject, kustomization, probes, "
          f"selectors, grace periods)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
