#!/usr/bin/env bash
# The embedded default: local kwok cluster + CRDs + the operator (in the background) + samples.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[run %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

hack/setup.sh
KUBECONFIG=$(python3 hack/cluster.py up)
BIN=$(hack/tools.sh --bin-dir)
export KUBECONFIG PATH="$BIN:$PATH"
RUN_DIR="${HEADY_CACHE:-$HOME/.cache/heady}/run"
mkdir -p "$RUN_DIR"

kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kubectl apply -f manifests/00-namespaces.yaml >/dev/null

if [[ -f "$RUN_DIR/operator.pid" ]] && kill -0 "$(cat "$RUN_DIR/operator.pid")" 2>/dev/null; then
  log "stopping the previous operator"
  kill "$(cat "$RUN_DIR/operator.pid")" && sleep 1
fi
log "starting the operator (log: $RUN_DIR/operator.log)"
HEADY_OPERATOR_NAMESPACE=heady-system HEADY_HTTP_PORT="${HEADY_HTTP_PORT:-8080}" \
  nohup .venv/bin/heady-operator >"$RUN_DIR/operator.log" 2>&1 &
echo $! >"$RUN_DIR/operator.pid"
for _ in $(seq 1 100); do
  curl -sf "localhost:${HEADY_HTTP_PORT:-8080}/healthz" >/dev/null && break
  kill -0 "$(cat "$RUN_DIR/operator.pid")" 2>/dev/null || die "the operator exited; see $RUN_DIR/operator.log"
  sleep 0.2
done

kubectl apply -f manifests/ >/dev/null
for kind in hsvc attn arena; do
  kubectl wait --for=condition=Ready "$kind" --all -n heady-demo --timeout=60s >/dev/null \
    || die "$kind samples did not become Ready; see $RUN_DIR/operator.log and kubectl describe $kind -n heady-demo"
done
kubectl get hsvc,attn,arena -n heady-demo
cat <<TXT

heady is running. Try:
  export KUBECONFIG=$KUBECONFIG PATH=$BIN:\$PATH
  kubectl get pods -n heady-demo -o custom-columns=POD:.metadata.name,REQUESTS:.spec.containers[0].resources.requests
  kubectl describe hsvc web -n heady-demo          # conditions and Events (Escalated, Relaxed, AccessSynced)
  kubectl get cm heady-access -n heady-system -o jsonpath='{.data.applications\.json}'   # Cloudflare Access apps, rendered (no API token)
  kubectl apply -f - <<EOF2                          # look at the api service for 20 s
  {"apiVersion":"heady.io/v1alpha1","kind":"AttentionSignal","metadata":{"name":"peek","namespace":"heady-demo"},"spec":{"services":["api"],"ttlSeconds":20}}
EOF2
  curl -s localhost:${HEADY_HTTP_PORT:-8080}/metrics | grep ^heady_
  make stop                                         # stop the operator and the cluster
TXT
