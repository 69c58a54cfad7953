#!/usr/bin/env bash
# Builds, at pinned versions and from the Go module proxy only, every binary the local
# kwok cluster needs, and caches them under ~/.cache/heady/bin/<pin-set>/.
# Idempotent: a binary already in the cache is never rebuilt.
# Usage: hack/tools.sh            build what is missing, print the bin dir on the last line
#        hack/tools.sh --bin-dir  only print the bin dir
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${HELM_VERSION:-v4.3.1}"

CACHE="${HEADY_CACHE:-$HOME/.cache/heady}"
BIN="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION"
if [[ "${1:-}" == "--bin-dir" ]]; then echo "$BIN"; exit 0; fi

log() { printf '[tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go is required (the Kubernetes binaries are built from the Go module proxy)"
mkdir -p "$BIN" "$CACHE/go/mod" "$CACHE/go/build" "$CACHE/src"
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local CGO_ENABLED=0

have() { [[ -x "$BIN/$1" ]]; }

# Runs a command in the background and prints a heartbeat so a long, silent `go build`
# still shows progress (CI logs and newcomers both need to see it is alive).
with_progress() {
  local what="$1"; shift
  local start=$SECONDS
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 15
    kill -0 "$pid" 2>/dev/null && log "$what: still building ($((SECONDS - start)) s)"
  done
  wait "$pid" || die "$what failed"
  log "$what: done in $((SECONDS - start)) s"
}

build_kubernetes() {
  local mod="$CACHE/src/kubernetes-$K8S_VERSION" stage="v0${K8S_VERSION#v1}"
  mkdir -p "$mod"
  if [[ ! -f "$mod/go.mod" ]]; then
    log "kubernetes $K8S_VERSION: preparing wrapper module"
    # k8s.io/kubernetes pins its staging modules at v0.0.0 through local replaces; the
    # list of those modules comes from its own go.mod at the tag, not from a hard-coded list.
    local upstream
    upstream=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    {
      echo "module heady.local/k8sbuild"
      echo "go 1.25"
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo "replace ("
      sed -n '/^replace (/,/^)/p' "$upstream" | grep -o 'k8s.io/[a-z0-9-]* =>' | awk -v v="$stage" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
    } > "$mod/go.mod.tmp"
    printf 'package main\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n)\n\nfunc main() {}\n' > "$mod/tools.go"
    mv "$mod/go.mod.tmp" "$mod/go.mod"
    (cd "$mod" && go mod tidy >/dev/null 2>&1 || true)
  fi
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
  local cmds=()
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do have "$c" || cmds+=("k8s.io/kubernetes/cmd/$c"); done
  [[ ${#cmds[@]} -eq 0 ]] && return 0
  log "kubernetes $K8S_VERSION: building ${cmds[*]##*/} (cold: about 6-10 min on 2 cores)"
  with_progress "kubernetes" bash -c "cd '$mod' && go build -trimpath -ldflags '$ld' -o '$BIN/' ${cmds[*]}"
}

build_etcd() {
  have etcd && return 0
  local mod="$CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  if [[ ! -f "$mod/go.mod" ]]; then
    printf 'module heady.local/etcdbuild\n\ngo 1.25\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$mod/go.mod"
    printf 'package main\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n\nfunc main() {}\n' > "$mod/tools.go"
    (cd "$mod" && go mod tidy >/dev/null 2>&1 || true)
  fi
  log "etcd $ETCD_VERSION: building"
  with_progress "etcd" bash -c "cd '$mod' && go build -trimpath -ldflags '-s -w' -o '$BIN/etcd' go.etcd.io/etcd/server/v3"
}

build_go_install() {  # name module@version
  have "$1" && return 0
  log "$1: go install $2"
  with_progress "$1" env GOBIN="$BIN" go install -trimpath -ldflags '-s -w' "$2"
}

build_etcd &
etcd_pid=$!
build_go_install kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
build_go_install kwokctl "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
build_go_install helm "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
wait "$etcd_pid" || die "etcd build failed"
build_kubernetes

for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl helm; do
  have "$b" || die "$b missing from $BIN after build"
done
"$BIN/kube-apiserver" --version >&2
log "all tools ready in $BIN"
echo "$BIN"
