# etcd for compose/docker-compose.ha.yml: Debian's etcd-server (and etcdctl, for the health check), the same
# package .ci/run and the etcd test fixtures use.
#   docker build -f compose/etcd.Dockerfile -t tcpmesh-etcd:dev compose/
# BASE_IMAGE is any Debian bookworm image; the docker test tier passes its locally built one
# (tests/docker/dockerenv.py) because no registry is reachable there.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server etcd-client \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && etcd --version

# client, peer
EXPOSE 2379 2380
CMD ["etcd", "--version"]
