#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine, idempotently:
# the Python virtualenv (.venv), redis-server and promtool (Debian), and the cluster tools (hack/tools.sh).
# Fails loudly when something cannot be installed; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v python3 >/dev/null || die "python3 (>= 3.11) is required"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 >= 3.11 is required"
command -v go >/dev/null || die "go is required to build the Kubernetes binaries"

if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.heady-installed
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  log "installing heady-operator and its dev tools into .venv"
  # .venv/bin/pip, not `python -m pip`: with the repo as cwd, operator/ would shadow the stdlib module.
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi

if ! command -v redis-server >/dev/null; then
  command -v apt-get >/dev/null || die "redis-server is missing and apt-get is not available to install it"
  log "installing redis-server from Debian"
  if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
  command -v redis-server >/dev/null || die "redis-server did not install"
fi

# promtool evaluates the dashboard's queries and the alert rules in the tests.
if ! command -v promtool >/dev/null; then
  command -v apt-get >/dev/null || die "promtool is missing and apt-get is not available to install Debian's prometheus package"
  log "installing promtool (Debian's prometheus package)"
  if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  command -v promtool >/dev/null || die "promtool did not install (Debian package prometheus)"
fi

hack/tools.sh >/dev/null
mkdir -p .mypy-path && ln -sfn ../operator .mypy-path/heady_operator
log "ready"
