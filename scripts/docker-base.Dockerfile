# Base image for the docker test tier, built on top of a debootstrapped Debian (no registry needed).
# Built by tests/docker/dockerenv.py (`python tests/docker/dockerenv.py base`), never by hand: the build
# context it prepares holds the host's CA bundle (extra-ca/) and a pip.conf that mirrors the host's
# network index settings, so pip inside the image reaches the same package index as the host.
ARG ROOTFS_IMAGE=tcpmesh-rootfs:bookworm
FROM ${ROOTFS_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv python3-pip \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

COPY extra-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY pip.conf /etc/pip.conf

# Debian's Python is "externally managed" (PEP 668): everything goes into one venv that is first on PATH,
# so `pip install` and `python` behave as in the python:3.11-slim image.
RUN python3 -m venv /opt/venv
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

CMD ["python"]
