#!/usr/bin/env bash
# Installs what the kind tier needs beyond hack/setup.sh, idempotently:
#   Debian: podman, buildah, mmdebstrap, runc, CNI plugins (and what podman needs to run);
#   podman configuration for machines like CI's (see below);
#   the Go-built tools (hack/kind-tools.sh) and the images (hack/kind-images.sh).
# Fails loudly when something cannot be installed; nothing is skipped.
# Usage: hack/kind-setup.sh                  everything
#        hack/kind-setup.sh --packages-only  Debian packages and podman configuration only
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[kind-setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi

PKGS=(podman buildah mmdebstrap runc containernetworking-plugins conmon crun catatonit
      fuse-overlayfs slirp4netns uidmap iptables busybox-static)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and apt-get is not available to install them"
  log "installing from Debian: ${missing[*]}"
  start=$SECONDS
  # No init system in CI containers: package scripts must not try to start services.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
  fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
  log "Debian packages installed in $((SECONDS - start)) s"
fi
for c in podman buildah mmdebstrap runc; do command -v "$c" >/dev/null || die "$c did not install"; done

# podman's configuration for this kind of machine. Written only where it is needed, as a
# drop-in of our own (never an edit of the distribution's containers.conf):
# - root without CAP_SYS_RESOURCE cannot raise rlimits, and podman's default ulimits exceed what
#   may be set here ("runc create failed: error setting rlimit"); kind cannot pass --ulimit. Seen
#   working: nofile 20000 and nproc 32768 (nproc at the shell's hard limit was refused).
# - on a cgroup v1 (hybrid) host crun refuses to run ("cgroups in hybrid mode not supported"):
#   use runc.
# - without systemd as the host's init, podman must manage cgroups itself and log events to a file.
conf=/etc/containers/containers.conf.d/50-heady-kind.conf
cap_eff=$(awk '/^CapEff/ {print $2}' /proc/self/status)
lines=()
if (( (16#$cap_eff >> 24 & 1) == 0 )); then
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [[ $nofile == unlimited || $nofile -gt 20000 ]] && nofile=20000
  [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
  lines+=("default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]")
fi
engine=()
if [[ ! -f /sys/fs/cgroup/cgroup.controllers ]]; then
  engine+=('runtime = "runc"')
fi
if [[ ! -d /run/systemd/system ]]; then
  engine+=('cgroup_manager = "cgroupfs"' 'events_logger = "file"')
fi
if [[ ${#lines[@]} -gt 0 || ${#engine[@]} -gt 0 ]]; then
  want=$(printf '# Written by heady-operator hack/kind-setup.sh (see the comments there).\n[containers]\n'; \
         for l in "${lines[@]}"; do echo "$l"; done; echo '[engine]'; for l in "${engine[@]}"; do echo "$l"; done)
  if [[ "$(cat "$conf" 2>/dev/null)" != "$want" ]]; then
    log "writing $conf"
    $SUDO mkdir -p "$(dirname "$conf")"
    echo "$want" | $SUDO tee "$conf" >/dev/null
  fi
fi

# kind bind-mounts the host's /lib/modules into its nodes; VMs without loadable modules have none.
if [[ ! -d /lib/modules ]]; then
  log "creating an empty /lib/modules (kind mounts it into its nodes)"
  $SUDO mkdir -p /lib/modules
fi

[[ "${1:-}" == "--packages-only" ]] && exit 0
hack/kind-tools.sh >/dev/null
python3 hack/images.py all
log "kind tier ready"
