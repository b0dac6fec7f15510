# syntax=docker/dockerfile:1
# The demo apps (Bookinfo services and tcp-echo): stdlib only, so no pip install.
# Build context: the repository root.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/opt/meshkit
COPY meshkit /opt/meshkit/meshkit
# Any uid but 1337: the capture rules only spare the sidecar's uid/gid.
USER 10001
# What runs is in the Deployment (meshkit/runtime/kind.py renders it).
