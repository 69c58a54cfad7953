#!/usr/bin/env bash
# Builds, at pinned versions and from the Go module proxy only, what a kind cluster with a
# locally built node image needs, and caches it under ~/.cache/heady/bin/<pin-set>/:
#   kind; kubelet, kubeadm, kube-proxy (same wrapper-module trick as hack/tools.sh);
#   containerd 2.x with its runc shim and ctr; coredns; a tiny static pause.
# The Debian side (podman, buildah, mmdebstrap, runc, CNI plugins) and podman's configuration
# are installed by hack/kind-setup.sh. Idempotent: a cached binary is never rebuilt.
# Usage: hack/kind-tools.sh            build what is missing, print the bin dir on the last line
#        hack/kind-tools.sh --bin-dir  only print the bin dir
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/kind/versions.sh

CACHE="${HEADY_CACHE:-$HOME/.cache/heady}"
BIN="$CACHE/bin/kind-$KIND_VERSION-k8s-$K8S_VERSION-containerd-$CONTAINERD_VERSION-coredns-$COREDNS_VERSION"
if [[ "${1:-}" == "--bin-dir" ]]; then echo "$BIN"; exit 0; fi

log() { printf '[kind-tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go is required (kind and the node's binaries are built from the Go module proxy)"
mkdir -p "$BIN" "$CACHE/go/mod" "$CACHE/go/build" "$CACHE/src"
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local CGO_ENABLED=0

have() { [[ -x "$BIN/$1" ]]; }

with_progress() {
  local what="$1"; shift
  local start=$SECONDS
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 20
    kill -0 "$pid" 2>/dev/null && log "$what: still building ($((SECONDS - start)) s)"
  done
  wait "$pid" || die "$what failed"
  log "$what: done in $((SECONDS - start)) s"
}

# A wrapper module of its own (not hack/tools.sh's): the node binaries pull in packages the
# control-plane wrapper's go.sum does not list, and two builds must not edit one go.mod at once.
build_kubernetes_node() {
  local mod="$CACHE/src/kubernetes-node-$K8S_VERSION" stage="v0${K8S_VERSION#v1}"
  mkdir -p "$mod"
  if [[ ! -f "$mod/go.mod" ]]; then
    log "kubernetes $K8S_VERSION: preparing the node wrapper module"
    local upstream
    upstream=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    {
      echo "module heady.local/k8snodebuild"
      echo "go 1.25"
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo "replace ("
      sed -n '/^replace (/,/^)/p' "$upstream" | grep -o 'k8s.io/[a-z0-9-]* =>' | awk -v v="$stage" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
    } > "$mod/go.mod.tmp"
    printf 'package main\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kubelet/app"\n\t_ "k8s.io/kubernetes/cmd/kubeadm/app"\n\t_ "k8s.io/kubernetes/cmd/kube-proxy/app"\n)\n\nfunc main() {}\n' > "$mod/tools.go"
    mv "$mod/go.mod.tmp" "$mod/go.mod"
    (cd "$mod" && go mod tidy >/dev/null 2>&1 || true)
  fi
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
  local cmds=()
  for c in kubelet kubeadm kube-proxy; do have "$c" || cmds+=("k8s.io/kubernetes/cmd/$c"); done
  [[ ${#cmds[@]} -eq 0 ]] && return 0
  log "kubernetes $K8S_VERSION: building ${cmds[*]##*/} (cold: about 5-8 min on 2 cores)"
  with_progress "kubelet/kubeadm/kube-proxy" bash -c "cd '$mod' && go build -trimpath -ldflags '$ld' -o '$BIN/' ${cmds[*]}"
}

build_containerd() {
  have containerd && have containerd-shim-runc-v2 && have ctr && return 0
  # Built inside a copy of containerd's own module (its go.mod and go.sum), not through a wrapper:
  # a wrapper's `go mod tidy` picks an old genproto and the build fails on an ambiguous import.
  local src="$CACHE/src/containerd-$CONTAINERD_VERSION"
  if [[ ! -f "$src/go.mod" ]]; then
    local dir
    dir=$(go mod download -json "github.com/containerd/containerd/v2@$CONTAINERD_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    rm -rf "$src.tmp" && cp -r "$dir" "$src.tmp" && chmod -R u+w "$src.tmp" && mv "$src.tmp" "$src"
  fi
  local pkg=github.com/containerd/containerd/v2
  local ld="-s -w -X $pkg/version.Version=$CONTAINERD_VERSION -X $pkg/version.Revision=heady"
  log "containerd $CONTAINERD_VERSION: building containerd, containerd-shim-runc-v2, ctr"
  with_progress "containerd" bash -c "cd '$src' && go build -mod=readonly -trimpath -tags 'no_btrfs no_devmapper no_zfs' -ldflags '$ld' -o '$BIN/' ./cmd/containerd ./cmd/containerd-shim-runc-v2 ./cmd/ctr"
}

build_go_install() {  # name module@version
  have "$1" && return 0
  log "$1: go install $2"
  with_progress "$1" env GOBIN="$BIN" go install -trimpath -ldflags '-s -w' "$2"
}

build_pause() {
  have pause && return 0
  local mod="$CACHE/src/heady-pause"
  mkdir -p "$mod"
  printf 'module heady.local/pause\n\ngo 1.25\n' > "$mod/go.mod"
  cp hack/kind/pause.go "$mod/main.go"
  (cd "$mod" && go build -trimpath -ldflags '-s -w' -o "$BIN/pause" .) || die "pause build failed"
}

start=$SECONDS
build_pause
build_go_install kind "sigs.k8s.io/kind@$KIND_VERSION"
build_containerd
build_go_install coredns "github.com/coredns/coredns@$COREDNS_VERSION"
build_kubernetes_node

for b in kind kubelet kubeadm kube-proxy containerd containerd-shim-runc-v2 ctr coredns pause; do
  have "$b" || die "$b missing from $BIN after build"
done
log "all kind tools ready in $BIN ($((SECONDS - start)) s)"
echo "$BIN"
