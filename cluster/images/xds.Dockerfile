# syntax=docker/dockerfile:1
# The control plane (the boss): meshkit's xDS server. Build context: the repository root.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY meshkit ./meshkit
RUN pip install . && rm -rf /src
WORKDIR /
USER 10001
# What runs is in the Deployment (meshkit/runtime/kind/rendering.py renders it).
EXPOSE 15010
