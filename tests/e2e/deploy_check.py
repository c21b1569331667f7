#!/usr/bin/env python3
"""Checks of deploy/ for tests/e2e/deploy.rs, run with the venv of scripts/ensure-deploy-tools.sh.

  deploy_check.py compose                   deploy/compose.yaml (and deploy/.env.example)
  deploy_check.py k8s [--write-config FILE]  deploy/k8s/ (FILE: the ConfigMap's celeriac.toml)

compose: the Compose specification's JSON schema as check-jsonschema ships it
(--builtin-schema vendor.compose-spec), then what docs/deploy.md promises of the file.
k8s: every manifest of Kubernetes' own kinds with kubernetes-validate (strict: unknown fields
are errors) against the oldest and newest Kubernetes versions named below; KEDA and Prometheus
Operator kinds with cloudcoil's models, generated from those projects' CRDs (pydantic checks
types; fields the model does not know are found by comparing the parsed object with the input);
kustomizations by their references; then what docs/deploy.md promises of the manifests.
Prints what it checked; exits 1 listing every problem.
"""

import argparse
import pathlib
import re
import subprocess
import sys
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
VENV_BIN = pathlib.Path(sys.executable).parent
# Kubernetes versions the manifests must validate against (kubernetes-validate ships both).
K8S_VERSIONS = ["1.29.0", "1.37.0"]
# worker.shutdown_grace when the config does not set it (config/default.toml).
DEFAULT_SHUTDOWN_GRACE = 25.0
HTTP_PORT = 9464
# Manifests under deploy/k8s that no kustomization applies, on purpose.
EXAMPLES = {"secret.example.yaml", "hpa/prometheus-adapter-config.yaml"}

problems: list[str] = []


def check(ok: bool, message: str) -> bool:
    if not ok:
        problems.append(message)
    return ok


def seconds(text: str) -> float:
    """A humantime duration as Celeriac writes them: 500ms, 25s, 2m, 1h, 1h30m."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", str(text))
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s", "", str(text)):
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def image_uid() -> int:
    text = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\d+)", text, re.M)
    if not users:
        raise SystemExit("deploy/Dockerfile has no numeric USER")
    return int(users[-1])


# --- compose -------------------------------------------------------------------------------


def compose() -> None:
    path = DEPLOY / "compose.yaml"
    out = subprocess.run(
        [str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
    )
    print(f"check-jsonschema --builtin-schema vendor.compose-spec: {out.stdout.strip()}")
    check(out.returncode == 0, f"{path} does not match the Compose specification:\n{out.stdout}{out.stderr}")

    doc = yaml.safe_load(path.read_text())
    services = doc.get("services", {})
    for name in ["redis", "postgres", "worker", "cron"]:
        check(name in services, f"compose: no service {name}")
    if problems:
        return
    grace = DEFAULT_SHUTDOWN_GRACE
    celeriac = {n: s for n, s in services.items() if "deploy/Dockerfile" in str(s.get("build", {}))}
    check({"worker", "cron"} <= set(celeriac), "compose: worker and cron must run the Celeriac image")
    for name, s in celeriac.items():
        env = s.get("environment", {})
        check(s.get("read_only") is True, f"compose: {name} must have a read-only root filesystem")
        check("/tmp" in s.get("tmpfs", []), f"compose: {name} needs a tmpfs on /tmp")
        check(env.get("CELERIAC_HTTP__LISTEN") == f"0.0.0.0:{HTTP_PORT}", f"compose: {name} must listen on {HTTP_PORT}")
    for name in ["worker", "cron"]:
        s = services[name]
        check(s.get("deploy", {}).get("replicas") == 2, f"compose: {name} must run 2 replicas")
        test = s.get("healthcheck", {}).get("test", [])
        check("/healthz" in " ".join(test), f"compose: {name} needs a healthcheck on /healthz")
    stop = seconds(services["worker"].get("stop_grace_period", "10s"))
    check(stop > grace, f"compose: worker stop_grace_period {stop}s must exceed shutdown_grace {grace}s")
    for name in ["redis", "postgres"]:
        check("healthcheck" in services[name], f"compose: {name} needs a healthcheck")

    redis = services["redis"]
    check("/usr/local/etc/redis/redis.conf" in redis.get("command", []), "compose: redis must run deploy/redis.conf")
    check(any(str(v).startswith("./redis.conf:") for v in redis.get("volumes", [])), "compose: mount ./redis.conf")
    conf = (DEPLOY / "redis.conf").read_text()
    for setting in ["appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction", "dir /data"]:
        check(re.search(rf"^{re.escape(setting)}$", conf, re.M) is not None, f"redis.conf: {setting}")

    # Secrets only from the environment: every credential is a ${VAR}, and .env.example names
    # every variable the file requires.
    text = path.read_text()
    for name, s in services.items():
        for key, value in (s.get("environment") or {}).items():
            value = str(value)
            if re.search(r"PASSWORD|AUTH|SECRET", key) or re.search(r"://[^/\s]*@", value):
                check("${" in value, f"compose: {name}.{key} must come from the environment, not the file")
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text))
    example = DEPLOY / ".env.example"
    defined = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example.read_text(), re.M)) if example.exists() else set()
    check(required <= defined, f"deploy/.env.example must define {sorted(required - defined)}")
    print(f"compose: services {sorted(services)}; required from the environment: {sorted(required)}")


# --- k8s -----------------------------------------------------------------------------------


def load_k8s() -> dict[str, list[dict]]:
    files = {}
    for f in sorted(K8S.rglob("*.yaml")):
        rel = f.relative_to(K8S).as_posix()
        try:
            files[rel] = [d for d in yaml.safe_load_all(f.read_text()) if d]
        except yaml.YAMLError as e:
            check(False, f"{rel}: not YAML: {e}")
    return files


def kustomizations(files: dict[str, list[dict]]) -> None:
    referenced = set()
    for rel, docs in files.items():
        for doc in docs:
            if doc.get("kind") not in ("Kustomization", "Component"):
                continue
            base = (K8S / rel).parent
            for key in ("resources", "components"):
                for entry in doc.get(key, []):
                    target = (base / entry).resolve()
                    if target.is_dir():
                        k = target / "kustomization.yaml"
                        check(k.exists(), f"{rel}: {key} {entry} has no kustomization.yaml")
                        if key == "components" and k.exists():
                            kind = yaml.safe_load(k.read_text()).get("kind")
                            check(kind == "Component", f"{rel}: {entry} is a {kind}, not a Component")
                    else:
                        check(target.is_file(), f"{rel}: {key} {entry} does not exist")
                        referenced.add(target.relative_to(K8S).as_posix())
            for patch in doc.get("patches", []):
                check("target" in patch and "patch" in patch, f"{rel}: a patch needs target and patch")
            check(doc["kind"] == "Kustomization" or doc.get("apiVersion") == "kustomize.config.k8s.io/v1alpha1",
                  f"{rel}: a Component is kustomize.config.k8s.io/v1alpha1")
            referenced.add(rel)
    for component in ["keda", "hpa", "monitoring"]:
        check(f"{component}/kustomization.yaml" in files, f"deploy/k8s/{component}/ is missing")
    left_out = set(files) - referenced - EXAMPLES
    check(not left_out, f"manifests no kustomization applies: {sorted(left_out)}")


def diff(want, got, path="") -> list[str]:
    """Where `got` (the model's dump) lost or changed what `want` (the input) says."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path or '.'}: not an object"]
        out = []
        for k, v in want.items():
            if k not in got:
                out.append(f"{path}.{k}: unknown field")
            else:
                out.extend(diff(v, got[k], f"{path}.{k}"))
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: list changed"]
        return [d for i, (a, b) in enumerate(zip(want, got)) for d in diff(a, b, f"{path}[{i}]")]
    return [] if want == got or str(want) == str(got) else [f"{path}: {want!r} read as {got!r}"]


def crd_models():
    from cloudcoil.models.keda import v1alpha1 as keda
    from cloudcoil.models.prometheus_operator import v1 as monitoring

    return {
        ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
        ("keda.sh/v1alpha1", "TriggerAuthentication"): keda.TriggerAuthentication,
        ("monitoring.coreos.com/v1", "ServiceMonitor"): monitoring.ServiceMonitor,
    }


def validate_schemas(files: dict[str, list[dict]]) -> None:
    from kubernetes_validate import utils as kv

    models = crd_models()
    for rel, docs in files.items():
        for doc in docs:
            kind, api = doc.get("kind"), doc.get("apiVersion")
            if kind in ("Kustomization", "Component"):
                continue
            what = f"{rel}: {kind}/{doc.get('metadata', {}).get('name')}"
            if (api, kind) in models:
                try:
                    parsed = models[(api, kind)].model_validate(doc)
                except Exception as e:  # pydantic's ValidationError names the field
                    check(False, f"{what} does not match the {kind} CRD: {e}")
                    continue
                dumped = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
                lost = diff(doc, dumped)
                check(not lost, f"{what} against the {kind} CRD: {lost}")
                print(f"ok {what} (CRD model {models[(api, kind)].__module__})")
                continue
            for version in K8S_VERSIONS:
                try:
                    kv.validate(doc, version, strict=True)
                except kv.SchemaNotFoundError:
                    check(False, f"{what}: no schema for {api} {kind} in Kubernetes {version}")
                except kv.ValidationError as e:
                    where = ".".join(str(p) for p in e.path)
                    check(False, f"{what} (Kubernetes {version}): {where}: {e.message}")
            print(f"ok {what} (kubernetes-validate --strict, Kubernetes {', '.join(K8S_VERSIONS)})")


def by_kind(files, kind, name=None):
    found = [d for docs in files.values() for d in docs if d.get("kind") == kind
             and (name is None or d.get("metadata", {}).get("name") == name)]
    return found


def semantics(files: dict[str, list[dict]], write_config: pathlib.Path | None) -> None:
    uid = image_uid()
    cm = by_kind(files, "ConfigMap", "celeriac-config")
    if not check(len(cm) == 1, "configmap.yaml: one ConfigMap celeriac-config"):
        return
    text = cm[0]["data"]["celeriac.toml"]
    config = tomllib.loads(text)
    if write_config:
        write_config.write_text(text)
    worker_cfg = config.get("worker", {})
    grace = seconds(worker_cfg.get("shutdown_grace", f"{DEFAULT_SHUTDOWN_GRACE}s"))
    prefix = config.get("prefix", "celeriac")
    queues = worker_cfg.get("queues", ["default"])
    check("redis_url" not in config and "database_url" not in config,
          "configmap.yaml: redis_url and database_url (with passwords) belong in the Secret")

    secret = by_kind(files, "Secret", "celeriac-secrets")
    secret_keys = set(secret[0].get("stringData", {})) if secret else set()
    check(bool(secret), "secret.example.yaml: a Secret celeriac-secrets")

    deployments = {d["metadata"]["name"]: d for d in by_kind(files, "Deployment")}
    for name in ["celeriac-worker", "celeriac-cron"]:
        if not check(name in deployments, f"no Deployment {name}"):
            continue
        d = deployments[name]
        pod = d["spec"]["template"]["spec"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        c = pod["containers"][0]
        sec, psec = c.get("securityContext", {}), pod.get("securityContext", {})
        check(psec.get("runAsNonRoot") is True and psec.get("runAsUser") == uid,
              f"{name}: runAsNonRoot with the image's UID {uid}")
        check(sec.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem")
        check(sec.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation: false")
        check("ALL" in sec.get("capabilities", {}).get("drop", []), f"{name}: drop ALL capabilities")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        check("/tmp" in mounts, f"{name}: a writable /tmp (the root filesystem is read-only)")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        check(ports.get("http") == HTTP_PORT, f"{name}: container port http = {HTTP_PORT}")
        for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
            get = c.get(probe, {}).get("httpGet", {})
            check(get.get("path") == path and get.get("port") in ("http", HTTP_PORT),
                  f"{name}: {probe} GET {path} on {HTTP_PORT}")
        req = c.get("resources", {}).get("requests", {})
        check("cpu" in req and "memory" in req, f"{name}: cpu and memory requests")
        env = {e["name"]: e for e in c.get("env", [])}
        for var in ["CELERIAC_REDIS_URL", "CELERIAC_DATABASE_URL"]:
            ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
            check(ref.get("name") == "celeriac-secrets" and ref.get("key") in secret_keys,
                  f"{name}: {var} from a key of the Secret celeriac-secrets")
        check(env.get("CELERIAC_HTTP__LISTEN", {}).get("value") == f"0.0.0.0:{HTTP_PORT}",
              f"{name}: CELERIAC_HTTP__LISTEN=0.0.0.0:{HTTP_PORT}")
        args = c.get("args", [])
        config_mount = [p for p, v in mounts.items() if v == "config"]
        check(bool(config_mount) and "--config" in args
              and args[args.index("--config") + 1].startswith(config_mount[0] + "/"),
              f"{name}: --config from the mounted ConfigMap")
        for pdb in by_kind(files, "PodDisruptionBudget", name):
            sel = pdb["spec"]["selector"]["matchLabels"]
            check(sel.items() <= labels.items(), f"PodDisruptionBudget {name} must select {name}'s pods")
        check(len(by_kind(files, "PodDisruptionBudget", name)) == 1, f"a PodDisruptionBudget {name}")

    worker = deployments.get("celeriac-worker")
    if worker:
        tgps = worker["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        check(tgps > grace, f"worker terminationGracePeriodSeconds {tgps} must exceed shutdown_grace {grace}s")
        check(worker["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "worker", "worker runs `worker`")
        print(f"worker: terminationGracePeriodSeconds {tgps} > shutdown_grace {grace:g}s")
    cron = deployments.get("celeriac-cron")
    if cron:
        check(cron["spec"].get("replicas") == 2, "cron: 2 replicas")
        check(cron["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "cron", "cron runs `cron`")

    for so in by_kind(files, "ScaledObject"):
        check(so["spec"]["scaleTargetRef"]["name"] == "celeriac-worker", "ScaledObject scales celeriac-worker")
        check(so["spec"].get("minReplicaCount", 0) >= 1, "ScaledObject: minReplicaCount >= 1")
        lists = {t["metadata"].get("listName") for t in so["spec"]["triggers"] if t["type"] == "redis"}
        want = {f"{prefix}:{{{q}}}:pending" for q in queues}
        check(lists == want, f"ScaledObject: redis triggers on {sorted(want)}, found {sorted(lists)}")
        print(f"ScaledObject: redis list length of {sorted(lists)}")
    for ta in by_kind(files, "TriggerAuthentication"):
        for ref in ta["spec"].get("secretTargetRef", []):
            check(ref["name"] == "celeriac-secrets" and ref["key"] in secret_keys,
                  f"TriggerAuthentication: {ref} must name a key of celeriac-secrets")
    for hpa in by_kind(files, "HorizontalPodAutoscaler"):
        check(hpa["spec"]["scaleTargetRef"]["name"] == "celeriac-worker", "HPA scales celeriac-worker")
        check(hpa["spec"].get("minReplicas", 1) >= 1, "HPA: minReplicas >= 1")
        ext = [m["external"] for m in hpa["spec"]["metrics"] if m["type"] == "External"]
        check(any(e["metric"]["name"] == "celeriac_queue_jobs"
                  and e["metric"]["selector"]["matchLabels"].get("state") == "pending" for e in ext),
              "HPA: external metric celeriac_queue_jobs{state=pending}")
    adapter = by_kind(files, "ConfigMap", "adapter-config")
    if check(len(adapter) == 1, "hpa/prometheus-adapter-config.yaml: the adapter rule"):
        rules = yaml.safe_load(adapter[0]["data"]["config.yaml"]).get("externalRules", [])
        check(any("celeriac_queue_jobs" in r.get("seriesQuery", "") for r in rules),
              "adapter rule for celeriac_queue_jobs")
    services = {s["metadata"]["name"]: s for s in by_kind(files, "Service")}
    for sm in by_kind(files, "ServiceMonitor"):
        sel = sm["spec"]["selector"]["matchLabels"]
        match = [s for s in services.values() if sel.items() <= s["metadata"].get("labels", {}).items()]
        check(len(match) == 1, f"ServiceMonitor {sm['metadata']['name']} must select one Service")
        for ep in sm["spec"]["endpoints"]:
            check(any(p["name"] == ep["port"] for s in match for p in s["spec"]["ports"]),
                  f"ServiceMonitor port {ep['port']} must be a port of the Service")


def k8s(write_config: pathlib.Path | None) -> None:
    files = load_k8s()
    kustomizations(files)
    validate_schemas(files)
    semantics(files, write_config)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["compose", "k8s"])
    parser.add_argument("--write-config", type=pathlib.Path)
    args = parser.parse_args()
    if args.what == "compose":
        compose()
    else:
        k8s(args.write_config)
    if problems:
        print(f"{len(problems)} problem(s):", *problems, sep="\n- ", file=sys.stderr)
        return 1
    print(f"deploy/{'compose.yaml' if args.what == 'compose' else 'k8s'}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
