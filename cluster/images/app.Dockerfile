# syntax=docker/dockerfile:1
# The demo apps (Bookinfo services and tcp-echo): standalone stdlib scripts, run as the local
# runtime runs them (`python -I <script>`). Build context: the repository root.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# pod_client.py (with the curl.py it imports) is what `mesh.curl`/`tcp`/`pod_info` run on kind through
# `kubectl exec` in the app container: the request leaves from inside the pod, iptables hands it to the sidecar.
COPY meshkit/runtime/apps/bookinfo.py meshkit/runtime/apps/tcp_echo.py meshkit/runtime/apps/pod_client.py meshkit/runtime/curl.py /opt/meshkit-apps/
# Any uid but 1337: the capture rules only spare the sidecar's uid/gid.
USER 10001
# What runs is in the Deployment (meshkit/runtime/kind/rendering.py renders it).
