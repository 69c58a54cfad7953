# Pinned versions of the kind tier (sourced by hack/kind-tools.sh and hack/kind-images.sh).
# The Kubernetes version matches hack/tools.sh; the node image bundles these binaries.
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
# containerd 2.2: Kubernetes 1.36 needs containerd 2.x, and 2.2 still runs on cgroup v1 hosts.
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.2.9}"
# The CoreDNS version kubeadm v1.36 deploys (cmd/kubeadm/app/constants CoreDNSVersion).
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.2}"
# The etcd image tag kubeadm v1.36 asks for; the binary inside is hack/tools.sh's etcd.
KUBEADM_ETCD_TAG="${KUBEADM_ETCD_TAG:-3.6.8-0}"
PAUSE_TAG="${PAUSE_TAG:-3.10.2}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
