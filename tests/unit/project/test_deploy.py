"""The deployment artifacts agree with each other and with the config they ship.

No Docker and no cluster: the Kubernetes manifests are rendered with ``kubectl kustomize`` (what
``kubectl apply -k .`` sends), the compose file and the Dockerfile are parsed as text/YAML, and the
config they carry is loaded with ``load_config`` exactly as the container would see it (the
ConfigMaps projected into folders, a keys file, the environment the Deployment gives the pod and
nothing else). The Secrets are not rendered (the operator makes them); their example is read from
deploy/kubernetes/examples/.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from gateway.config.settings import PUBLIC_EXAMPLE_KEYS, Config, ConfigError, load_config
from gateway.upstream.examples import run_examples

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = DEPLOY / "compose.yaml"
EXAMPLE_SECRETS = K8S / "examples" / "secrets.example.yaml"

_ENV_DEFAULT = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$")


# ---- reading the artifacts -------------------------------------------------------------------


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize directory``: the objects ``kubectl apply -k`` would send."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the manifests can't be rendered")
    done = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]


@functools.cache
def _rendered() -> tuple[dict[str, Any], ...]:
    return tuple(kustomize(ROOT))


def _index(docs: Any, source: str) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        assert isinstance(doc, dict) and "kind" in doc, f"{source}: not a Kubernetes object"
        name = doc["metadata"]["name"]
        assert (doc["kind"], name) not in found, f"{source}: {doc['kind']}/{name} defined twice"
        found[(doc["kind"], name)] = doc
    return found


def _manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """The rendered objects, plus the example Secrets (which are deliberately not applied)."""
    examples = [doc for doc in yaml.safe_load_all(EXAMPLE_SECRETS.read_text(encoding="utf-8")) if doc]
    return {**_index(_rendered(), "kubectl kustomize ."), **_index(examples, EXAMPLE_SECRETS.name)}


def _generated(name: str, actual: str) -> bool:
    """Is ``actual`` the ConfigMap ``name``, with or without kustomize's content-hash suffix?"""
    return re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?", actual) is not None


def _one(kind: str) -> dict[str, Any]:
    objects = [doc for (k, _), doc in _manifests().items() if k == kind]
    assert len(objects) == 1, f"expected exactly one {kind}, found {len(objects)}"
    return objects[0]


def _by_name(kind: str, name: str) -> dict[str, Any]:
    manifests = _manifests()
    assert (kind, name) in manifests, f"no {kind} named {name!r} in deploy/kubernetes/"
    return manifests[(kind, name)]


def _pod_spec() -> dict[str, Any]:
    found: dict[str, Any] = _one("Deployment")["spec"]["template"]["spec"]
    return found


def _container() -> dict[str, Any]:
    containers = _pod_spec()["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def _named_port(name: str) -> dict[str, Any]:
    ports = [port for port in _container()["ports"] if port["name"] == name]
    assert len(ports) == 1, f"the container should name one port {name!r}"
    found: dict[str, Any] = ports[0]
    return found


def _http_port() -> dict[str, Any]:
    return _named_port("http")


def _ops_port() -> dict[str, Any]:
    return _named_port("ops")


def _volume(name: str) -> dict[str, Any]:
    volumes = {volume["name"]: volume for volume in _pod_spec()["volumes"]}
    assert name in volumes, f"no volume {name!r}"
    found: dict[str, Any] = volumes[name]
    return found


def _mount_of(volume_kind: str, object_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The volume that holds ConfigMap/Secret ``object_name`` and the container's mount of it."""
    key = {"configMap": "name", "secret": "secretName"}[volume_kind]
    volumes = [v for v in _pod_spec()["volumes"] if _generated(object_name, v.get(volume_kind, {}).get(key, ""))]
    assert len(volumes) == 1, f"the pod should mount {volume_kind} {object_name!r} once"
    mounts = [m for m in _container()["volumeMounts"] if m["name"] == volumes[0]["name"]]
    assert len(mounts) == 1 and "subPath" not in mounts[0], f"mount {object_name!r} whole (no subPath: it never updates)"
    return volumes[0], mounts[0]


def _projected(volume: dict[str, Any], data: dict[str, str], kind: str) -> dict[str, str]:
    """What the kubelet writes into the mount: relative path -> content."""
    items = volume[kind].get("items")
    if items is None:
        return dict(data)
    files = {}
    for item in items:
        assert item["key"] in data, f"volume {volume['name']!r} projects a missing key {item['key']!r}"
        files[item["path"]] = data[item["key"]]
    return files


def _secret_data(secret: dict[str, Any]) -> dict[str, str]:
    assert "data" not in secret, "write the example Secret as stringData (readable, and marked EXAMPLE)"
    return dict(secret["stringData"])


def _env_default(value: str) -> str:
    """``${VAR:-default}`` -> default (what the container sees when VAR is unset); text as is."""
    match = _ENV_DEFAULT.match(value)
    if not match:
        return value
    assert match.group(2) is not None, f"{value} has no default"
    return match.group(2)


def _raw_config() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(_configmap()["data"]["gateway.yaml"])
    return found


def _configmap(name: str = "gateway-config") -> dict[str, Any]:
    volume, _ = _mount_of("configMap", name)
    return _by_name("ConfigMap", volume["configMap"]["name"])


def _keys_secret_name() -> str:
    mount_dir = posixpath.dirname(_keys_file_path())
    mounts = [m for m in _container()["volumeMounts"] if m["mountPath"] == mount_dir]
    assert len(mounts) == 1, f"nothing is mounted at {mount_dir}, where keys_file points"
    volume = _volume(mounts[0]["name"])
    assert "secret" in volume, "the keys file must come from a Secret"
    found: str = volume["secret"]["secretName"]
    return found


def _keys_file_path() -> str:
    return _env_default(_raw_config()["keys_file"])


def _pod_env() -> dict[str, str]:
    """The environment the Deployment gives the container: env values plus envFrom Secrets."""
    container = _container()
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "secretRef" in source or "configMapRef" in source
        if "secretRef" in source:
            env.update(_secret_data(_by_name("Secret", source["secretRef"]["name"])))
        else:
            env.update(_by_name("ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        assert "value" in variable, f"env {variable['name']}: use a literal value or envFrom"
        env[variable["name"]] = variable["value"]
    return env


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends in a continuation line"
    return instructions


def _stages() -> list[tuple[str, list[tuple[str, str]]]]:
    """(name, instructions) of each stage; an unnamed stage's name is ""."""
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for word, rest in _dockerfile():
        if word == "FROM":
            base, _, name = rest.partition(" AS ") if " AS " in rest else rest.partition(" as ")
            stages.append((name.strip(), [(word, base.strip())]))
        else:
            stages[-1][1].append((word, rest))
    return stages


def _stage(target: str | None = None) -> list[tuple[str, str]]:
    """The instructions that make ``target`` (default: the last stage, what a plain build makes),
    those of the stages it is built FROM first."""
    stages = _stages()
    named = {name: instructions for name, instructions in stages if name}
    instructions = named[target] if target else stages[-1][1]
    while instructions[0][1] in named:
        instructions = named[instructions[0][1]] + instructions[1:]
    return instructions


def _final_stage() -> list[tuple[str, str]]:
    return _stage()


def _exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(part, str) for part in value), arguments
    return value


def _image_command() -> tuple[list[str], list[str]]:
    stage = _final_stage()
    entrypoint = [_exec_form(rest) for word, rest in stage if word == "ENTRYPOINT"]
    cmd = [_exec_form(rest) for word, rest in stage if word == "CMD"]
    return (entrypoint[-1] if entrypoint else []), (cmd[-1] if cmd else [])


def _config_flag(argv: list[str]) -> str:
    assert "serve" in argv, f"{argv} does not run `gateway serve`"
    assert "--config" in argv, f"{argv} does not name --config"
    return argv[argv.index("--config") + 1]


def _dockerignore_excludes(path: str) -> bool:
    """Docker's .dockerignore rules: last matching pattern wins; a match on a parent folder counts."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                out += ".*"
                i += 2
            elif pattern[i] == "*":
                out += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                out += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out += pattern[i : end + 1]
                i = end + 1
            else:
                out += re.escape(pattern[i])
                i += 1
        return re.compile(out)

    rules: list[tuple[bool, re.Pattern[str]]] = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip("/"))
        rules.append((negate, regex(pattern)))
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, rule in rules:
        if any(rule.fullmatch(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


# ---- the config the ConfigMap carries actually loads ------------------------------------------


@pytest.fixture
def pod_config(tmp_path: Path) -> Config:
    """Load the ConfigMap's gateway.yaml as the pod would: projected files, Secret keys, pod env."""
    config_path = _config_flag(_effective_k8s_argv())
    for name in ("gateway-config", "gateway-mappings"):
        volume, mount = _mount_of("configMap", name)
        folder = tmp_path / mount["mountPath"].lstrip("/")
        for relative, content in _projected(volume, _configmap(name)["data"], "configMap").items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(content, encoding="utf-8")
    # A key of the operator's own: the example Secret's public key is refused (tested below).
    keys_file = tmp_path / "keys"
    keys_file.write_text(Fernet.generate_key().decode("ascii") + "\n", encoding="utf-8")
    # Only the variable that points keys_file away from /run/secrets is added: everything else
    # the config and mappings need must come from the Deployment.
    env = {**_pod_env(), "GATEWAY_KEYS_FILE": str(keys_file)}
    return load_config(tmp_path / config_path.lstrip("/"), env=env)


def _effective_k8s_argv() -> list[str]:
    entrypoint, cmd = _image_command()
    container = _container()
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    return [*entrypoint, *container.get("args", cmd)]


def test_every_manifest_renders_and_the_kustomization_lists_them() -> None:
    rendered = _index(_rendered(), "kubectl kustomize .")
    kinds = {kind for kind, _ in rendered}
    for wanted in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap", "NetworkPolicy"):
        assert wanted in kinds, f"kubectl kustomize . renders no {wanted}"
    assert "Secret" not in kinds, "apply -k must never overwrite the operator's real Secrets with the public example"
    for (kind, name), doc in rendered.items():
        assert doc.get("apiVersion"), f"{kind}/{name} has no apiVersion"
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    others = {file.name for file in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == others


def test_the_configmaps_are_the_repository_files_byte_for_byte() -> None:
    """What is deployed is what is tested: generated from deploy/gateway.yaml and mappings/."""
    assert _configmap()["data"]["gateway.yaml"] == (DEPLOY / "gateway.yaml").read_text(encoding="utf-8")
    shipped = {file.name: file.read_text(encoding="utf-8") for file in sorted((ROOT / "mappings").glob("*.yaml"))}
    assert _configmap("gateway-mappings")["data"] == shipped


def test_the_configmaps_roll_the_pods_when_they_change() -> None:
    """The generated names carry a content hash, and the Deployment names the hashed ConfigMaps."""
    for volume in _pod_spec()["volumes"]:
        if "configMap" in volume:
            assert re.fullmatch(r"gateway-(config|mappings)-[a-z0-9]{10}", volume["configMap"]["name"]), volume


def test_the_example_secrets_are_not_applied_and_their_key_is_refused(tmp_path: Path) -> None:
    keys = _secret_data(_by_name("Secret", "gateway-keys"))["keys"]
    values = [line.strip() for line in keys.splitlines() if line.strip() and not line.startswith("#")]
    assert values and set(values) <= PUBLIC_EXAMPLE_KEYS, "the example's keys must all be refused at start"
    config = tmp_path / "gateway.yaml"
    config.write_text(f"public_url: https://link.example.com\nkeys: [{values[0]}]\ndemo: true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="public example key"):
        load_config(config, env={})


def test_the_pod_config_loads_and_is_production_shaped(pod_config: Config) -> None:
    assert pod_config.host == "0.0.0.0"
    assert pod_config.public_url.startswith("https://")
    assert pod_config.cookie.secure
    assert not pod_config.demo
    assert not pod_config.ephemeral_key, "the keys must come from the Secret, not be made up at start"
    assert set(pod_config.providers) == set(_raw_config()["providers"])
    for mapping in pod_config.providers.values():
        assert run_examples(mapping) == []


def test_the_keys_secret_holds_fernet_keys_marked_as_examples() -> None:
    keys = _secret_data(_by_name("Secret", _keys_secret_name()))[posixpath.basename(_keys_file_path())]
    lines = keys.splitlines()
    values = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert values, "the keys file holds no key"
    for value in values:
        Fernet(value.encode("ascii"))  # the right format, so the refusal is about publicity, not syntax
    assert any("EXAMPLE" in line for line in lines if line.startswith("#")), "mark the example keys: EXAMPLE - replace"
    assert keys.isascii()


def test_the_credentials_are_marked_as_examples() -> None:
    container = _container()
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            for name, value in _secret_data(_by_name("Secret", source["secretRef"]["name"])).items():
                assert "EXAMPLE" in value, f"{name}: mark example values EXAMPLE"


# ---- ports, probes, Service --------------------------------------------------------------------


def test_the_container_port_is_the_configured_listen_port(pod_config: Config) -> None:
    assert _http_port()["containerPort"] == pod_config.port
    assert _http_port().get("protocol", "TCP") == "TCP"
    assert pod_config.metrics is not None, "serve /metrics and health on the ops listener (metrics:), not the public port"
    assert _ops_port()["containerPort"] == pod_config.metrics.port


def _is_the_http_port(port: object) -> bool:
    return port in (_http_port()["containerPort"], _http_port().get("name"))


def test_the_probes_hit_healthz_and_readyz_on_the_ops_port() -> None:
    """The ops listener is plain http whatever ``tls:`` says, so the probes never need a scheme."""
    container = _container()
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in container:
            assert container[probe]["httpGet"]["port"] in (_ops_port()["name"], _ops_port()["containerPort"]), probe
            assert container[probe]["httpGet"].get("scheme", "HTTP") == "HTTP"


def test_the_network_policy_keeps_metrics_private() -> None:
    policy = _one("NetworkPolicy")
    labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert "Ingress" in policy["spec"]["policyTypes"]
    for rule in policy["spec"]["ingress"]:
        ports = {port["port"] for port in rule["ports"]}
        if ports & {_ops_port()["name"], _ops_port()["containerPort"]}:
            assert rule.get("from"), "the ops port (/metrics) must be open only to named peers"
    public = [rule for rule in policy["spec"]["ingress"] if {p["port"] for p in rule["ports"]} & {"http", _http_port()["containerPort"]}]
    assert public and not any(rule.get("from") for rule in public), "the public port stays reachable"


def test_the_service_reaches_the_pods() -> None:
    service = _one("Service")
    labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"], "the Service exposes no port"
    for port in service["spec"]["ports"]:
        assert _is_the_http_port(port["targetPort"]), "the public Service must not carry the ops port"
    assert service["spec"].get("sessionAffinity", "None") == "None", "the gateway is stateless: no sticky sessions"


# ---- mounts ----------------------------------------------------------------------------------------


def test_the_configmap_is_mounted_where_config_points(pod_config: Config) -> None:
    config_path = PurePosixPath(_config_flag(_effective_k8s_argv()))
    volume, mount = _mount_of("configMap", "gateway-config")
    assert mount.get("readOnly") is True
    files = _projected(volume, _configmap()["data"], "configMap")
    assert str(config_path.relative_to(mount["mountPath"])) in files
    # The mappings are a sibling mount (a mount inside a read-only mount fails to start), where
    # `mappings:` points from the config's folder.
    mappings_volume, mappings_mount = _mount_of("configMap", "gateway-mappings")
    assert mappings_mount.get("readOnly") is True
    mappings_dir = PurePosixPath(posixpath.normpath(config_path.parent / _raw_config()["mappings"]))
    assert mappings_dir == PurePosixPath(mappings_mount["mountPath"])
    assert not mappings_dir.is_relative_to(mount["mountPath"]) and not PurePosixPath(mount["mountPath"]).is_relative_to(mappings_dir)
    mapping_files = _projected(mappings_volume, _configmap("gateway-mappings")["data"], "configMap")
    for provider in pod_config.providers:
        assert f"{provider}.yaml" in mapping_files


def test_the_keys_secret_is_mounted_where_keys_file_points() -> None:
    path = _keys_file_path()
    assert PurePosixPath(path).is_absolute()
    volume, mount = _mount_of("secret", _keys_secret_name())
    assert mount["mountPath"] == posixpath.dirname(path)
    assert mount.get("readOnly") is True
    secret = _by_name("Secret", _keys_secret_name())
    assert posixpath.basename(path) in _projected(volume, _secret_data(secret), "secret")
    mode = volume["secret"].get("defaultMode", 0o644)
    assert mode & 0o007 == 0, "the keys file must not be world-readable"
    assert _pod_spec()["securityContext"].get("fsGroup") is not None or mode & 0o004, "the gateway user can't read it"


# ---- scaling and disruption ------------------------------------------------------------------------


def test_replicas_hpa_and_pdb() -> None:
    deployment = _one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "replicas" not in deployment["spec"], "the HPA owns the count; replicas: would reset it on every apply"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()

    hpa = _one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
    cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu and cpu[0]["resource"]["target"]["type"] == "Utilization"
    assert _container()["resources"]["requests"]["cpu"], "CPU utilization is relative to the CPU request"

    pdb = _one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"].get("maxUnavailable") == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_pods_spread_per_roll_out() -> None:
    """Without matchLabelKeys the old ReplicaSet's pods count too, and a roll-out piles new pods up."""
    constraints = _pod_spec()["topologySpreadConstraints"]
    assert constraints
    for constraint in constraints:
        assert constraint.get("matchLabelKeys") == ["pod-template-hash"], constraint["topologyKey"]


def test_resources_are_set() -> None:
    resources = _container()["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_termination_grace_covers_the_drain(pod_config: Config) -> None:
    grace = _pod_spec()["terminationGracePeriodSeconds"]
    pre_stop = _container().get("lifecycle", {}).get("preStop", {})
    pause = 0
    if "exec" in pre_stop:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep"
        pause = int(command[1])
    elif "sleep" in pre_stop:
        pause = int(pre_stop["sleep"]["seconds"])
    drain = getattr(pod_config, "shutdown_grace", 10.0)
    assert grace >= pause + drain, f"terminationGracePeriodSeconds {grace} < preStop {pause} s + drain {drain} s"


# ---- security ----------------------------------------------------------------------------------------


def test_the_pod_is_locked_down() -> None:
    pod = _pod_spec()
    container = _container()
    security = container["securityContext"]
    assert pod["securityContext"].get("runAsNonRoot") is True or security.get("runAsNonRoot") is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security.get("privileged", False) is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert not security["capabilities"].get("add")
    seccomp = security.get("seccompProfile") or pod["securityContext"].get("seccompProfile")
    assert seccomp == {"type": "RuntimeDefault"}
    assert pod.get("automountServiceAccountToken") is False
    run_as = security.get("runAsUser", pod["securityContext"].get("runAsUser"))
    assert run_as is None or run_as == _dockerfile_uid()


# ---- the Dockerfile ----------------------------------------------------------------------------------


def _dockerfile_uid() -> int:
    users = [rest for word, rest in _final_stage() if word == "USER"]
    assert users, "the image must set a USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "USER must be numeric so that runAsNonRoot can verify it"
    return int(uid)


def test_the_image_is_slim_and_runs_as_a_user() -> None:
    earlier: set[str] = set()
    for name, instructions in _stages():
        base = instructions[0][1]
        assert base in earlier or re.fullmatch(r"python:3\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
        earlier.add(name)
    assert _dockerfile_uid() != 0


def test_the_production_image_leaves_the_demo_out_and_the_demo_target_adds_only_it() -> None:
    """The demo's secrets are public: a plain build installs the package without gateway/demo."""
    runs = [rest for word, rest in _final_stage() if word == "RUN"] + [rest for word, rest in _stage("build") if word == "RUN"]
    install = next(rest for rest in runs if "pip install" in rest)
    assert install.index("rm -rf gateway/demo") < install.index("pip install"), install
    assert not any(word == "COPY" and "demo" in rest for word, rest in _final_stage())
    demo = _stage("demo")
    added = demo[len(_stage("production")):]
    assert [word for word, _ in added] == ["COPY"] and "gateway/demo/" in added[0][1]


def test_the_image_installs_runtime_dependencies_only() -> None:
    runs = " ".join(rest for word, rest in _dockerfile() if word == "RUN")
    installs = re.findall(r"pip install ([^&;]*)", runs)
    assert installs, "no pip install"
    for arguments in installs:
        parts = shlex.split(arguments)
        assert parts[:2] == ["-c", "constraints.txt"], f"pip install {arguments}: pin with -c constraints.txt"
        targets = [part for part in parts[2:] if not part.startswith("-")]
        # `.` with runtime extras only (uvloop: gateway/web/server.py uses it when installed).
        assert targets in (["."], [".[uvloop]"]), f"pip install {arguments}: install `.` only (no [test] extras, no dev tools)"
    assert not any("[test]" in rest for _, rest in _dockerfile())


def test_the_healthcheck_follows_the_config_and_expose_lists_both_ports(pod_config: Config) -> None:
    stage = _final_stage()
    exposed = [port.split("/")[0] for word, rest in stage if word == "EXPOSE" for port in rest.split()]
    assert pod_config.metrics is not None
    assert exposed == [str(pod_config.port), str(pod_config.metrics.port)]
    checks = [rest for word, rest in stage if word == "HEALTHCHECK"]
    assert len(checks) == 1
    command = _exec_form(checks[0].split("CMD", 1)[1].strip())
    assert command[:2] == ["gateway", "health"], "probe the port and scheme the config names, not a fixed URL"
    assert command[command.index("--config") + 1] == _config_flag(_effective_k8s_argv())


def test_the_dockerfile_needs_no_frontend_from_a_registry() -> None:
    assert not DOCKERFILE.read_text(encoding="utf-8").startswith("# syntax="), "BuildKit would fetch that frontend"


def test_the_image_command_serves_the_mounted_config() -> None:
    entrypoint, cmd = _image_command()
    image_argv = [*entrypoint, *cmd]
    assert image_argv[0] == "gateway"
    assert _config_flag(image_argv) == _config_flag(_effective_k8s_argv())
    assert _effective_k8s_argv()[0] == "gateway"


def test_the_build_context_holds_what_the_build_needs() -> None:
    sources = []
    for word, rest in _dockerfile():
        if word == "COPY" and "--from=" not in rest:
            *paths, _destination = shlex.split(rest)
            sources += [path for path in paths if not path.startswith("--")]
    assert {"pyproject.toml", "README.md", "gateway/"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not _dockerignore_excludes(source.rstrip("/")), f"COPY {source}, but .dockerignore leaves it out"
    for needed in ("pyproject.toml", "README.md", "gateway/__init__.py", "gateway/cli/commands.py", "gateway/demo/demo.yaml"):
        assert not _dockerignore_excludes(needed), needed


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/unit/project/test_deploy.py",
        "tests/support/oidc-provider/node_modules/jose/package.json",
        "gateway/__pycache__/cli.cpython-311.pyc",
        "gateway.egg-info/PKG-INFO",
        ".pytest_cache/README.md",
    ],
)
def test_the_dockerignore_leaves_out(path: str) -> None:
    assert _dockerignore_excludes(path)


# ---- compose -----------------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return found


def _compose_gateway() -> dict[str, Any]:
    services = _compose()["services"]
    built = [service for service in services.values() if "build" in service]
    assert len(built) == 1, "compose should build exactly the gateway"
    found: dict[str, Any] = built[0]
    return found


def _compose_env(value: str) -> str:
    """Compose's own interpolation of a value, with GATEWAY_KEY set as deploy/README.md says."""
    key = Fernet.generate_key().decode("ascii")
    return re.sub(r"\$\{GATEWAY_KEY(?::?[?-][^}]*)?\}", key, value)


def test_compose_builds_this_dockerfile_and_runs_it_locked_down() -> None:
    gateway = _compose_gateway()
    context = (COMPOSE.parent / gateway["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / gateway["build"].get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    assert gateway.get("read_only") is True
    assert gateway.get("cap_drop") == ["ALL"]
    assert gateway["command"] == _image_command()[1]


def test_compose_mounts_a_config_that_loads(tmp_path: Path) -> None:
    gateway = _compose_gateway()
    config_path = PurePosixPath(_config_flag(gateway["command"]))
    etc = tmp_path / "etc"
    for volume in gateway["volumes"]:
        source, target, *options = volume.split(":")
        assert options == ["ro"], f"{volume}: mount config read-only"
        local = COMPOSE.parent / source
        destination = etc / PurePosixPath(target).relative_to("/")
        if local.is_dir():
            destination.mkdir(parents=True)
            for file in local.glob("*.yaml"):
                (destination / file.name).write_text(file.read_text(encoding="utf-8"), encoding="utf-8")
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(local.read_text(encoding="utf-8"), encoding="utf-8")
    env = {name: _compose_env(str(value)) for name, value in gateway.get("environment", {}).items()}
    config = load_config(etc / config_path.relative_to("/"), env=env)
    assert not config.ephemeral_key
    assert config.providers
    for mapping in config.providers.values():
        assert run_examples(mapping) == []

    # The listen port is published by whichever service owns the gateway's network.
    owner = gateway
    network_mode = gateway.get("network_mode", "")
    if network_mode.startswith("service:"):
        owner = _compose()["services"][network_mode.removeprefix("service:")]
    published = [str(port).rsplit(":", 1)[-1] for port in owner.get("ports", [])]
    assert str(config.port) in published


def test_compose_uses_a_pinned_authorization_server_image() -> None:
    others = [s for s in _compose()["services"].values() if "build" not in s]
    assert others, "compose should run an authorization server beside the gateway"
    for service in others:
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"pin {image}"


# ---- docs --------------------------------------------------------------------------------------------


def test_the_deploy_readme_names_the_paths_and_tls_rules() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for needed in (_config_flag(_effective_k8s_argv()), _keys_file_path(), "/healthz", "/readyz", "443", "chain"):
        assert needed in readme, f"deploy/README.md does not mention {needed}"


def test_the_deploy_readme_walks_from_apply_to_a_rotated_key() -> None:
    """The operator's path: Secrets made by hand, `kubectl apply -k .`, then the three roll-outs."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    readme = text[text.index("## Kubernetes") :]
    steps = [
        "kubectl create secret generic gateway-keys",
        "kubectl apply -k .\nkubectl rollout status",
        "add the new key SECOND",
        "move it FIRST",
        "remove OLD",
    ]
    positions = [readme.find(step) for step in steps]
    assert -1 not in positions, [step for step, at in zip(steps, positions, strict=True) if at == -1]
    assert positions == sorted(positions), "the steps are out of order"
    assert "tests/e2e/test_key_rotation.py" in readme and (ROOT / "tests/e2e/test_key_rotation.py").is_file()
