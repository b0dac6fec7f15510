# syntax=docker/dockerfile:1
# istio-init: installs the capture rules in the pod's network namespace, then exits.
# It runs the very file the local runtime runs. Build context: the repository root.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
COPY --chmod=0755 cluster/istio-iptables.sh /usr/local/bin/istio-iptables.sh
# The pod spec runs /usr/local/bin/istio-iptables.sh with the capture flags.
