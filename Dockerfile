# syntax=docker/dockerfile:1
# heady-operator image: the operator (ENTRYPOINT heady-operator) and the chaos Jobs (heady-chaos).
#   docker build -t heady-operator:0.1.0 .
# Two stages: the builder turns the project and its dependencies into wheels and installs them
# into a virtualenv; the final image gets only that virtualenv (no compiler, no pip, no sources).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
# Metadata first, then the package; README.md is optional (pyproject's readme).
COPY pyproject.toml README.md* /src/
COPY operator /src/operator
# Never run `python -m ...` from /src: the current directory comes first on sys.path there, and
# the package directory operator/ would shadow the standard library's operator module.
WORKDIR /wheels
# Wheels for the project and every dependency (all ship binary wheels for CPython 3.11 on
# manylinux, so no compiler is needed), installed offline into the virtualenv; byte-code is
# compiled now because the operator runs on a read-only root filesystem. pip's cache lives in a
# BuildKit cache mount, so a code change does not download every dependency again.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip wheel --wheel-dir /wheels /src \
 && /opt/venv/bin/pip install --no-index --find-links /wheels --compile heady-operator \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
 && /opt/venv/bin/python -c "import heady_operator; print('heady_operator', heady_operator.__version__)"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="heady-operator" \
      org.opencontainers.image.description="Attention-driven capacity for Kubernetes: baseline/peak in-place pod resize, arena sessions, chaos." \
      org.opencontainers.image.licenses="Apache-2.0"
# No package installers in the runtime image either; a fixed, non-root user (the chart's
# securityContext runs as 10001 too).
RUN python -m pip uninstall --yes pip setuptools wheel \
 && groupadd --system --gid 10001 heady \
 && useradd --system --uid 10001 --gid heady --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin heady
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["heady-operator"]
