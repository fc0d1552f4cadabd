#!/usr/bin/env bash
# The docker test tier: installs/starts a Docker engine if needed (root + apt), builds the registry-free base
# image and the project image (and the etcd image), runs compose/docker-compose.yml and compose/docker-compose.ha.yml
# and checks them from the host.
#   scripts/docker-tier.sh            # the whole tier (pytest -m docker tests/docker)
#   scripts/docker-tier.sh images     # only engine + base image + project image, with timings
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
case "${1:-test}" in
  images) exec "$PY" tests/docker/dockerenv.py all ;;
  test) shift || true; exec "$PY" -m pytest -m docker tests/docker "$@" ;;
  *) echo "usage: $0 [test [PYTEST_ARGS...]|images]" >&2; exit 2 ;;
esac
