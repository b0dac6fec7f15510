#!/bin/sh
# Istio's istio-init traffic capture (nat table, REDIRECT mode), as a plain POSIX sh script.
#
# The same file runs in meshkit's local network namespaces and in the kind pods' init container.
# Rules and chain names follow istio/istio tools/istio-iptables (capture/testdata/*.golden):
#   outbound TCP  -> ISTIO_OUTPUT -> ISTIO_REDIRECT    -> REDIRECT :15001 (virtualOutbound)
#   inbound TCP   -> ISTIO_INBOUND -> ISTIO_IN_REDIRECT -> REDIRECT :15006 (virtualInbound)
# Envoy runs as uid/gid 1337 and is never captured; Envoy's inbound hop to the app leaves from
# 127.0.0.6 on lo and is returned untouched.
#
# Usage: istio-iptables.sh [-p 15001] [-z 15006] [-u 1337] [-g 1337] [-d 15090,15021,15020]
#                          [--dry-run | --cleanup]
#   --dry-run  print the exact iptables-restore input and change nothing
#   --cleanup  remove the chains and the jumps into them
set -eu

PROXY_PORT=15001
INBOUND_CAPTURE_PORT=15006
PROXY_UID=1337
PROXY_GID=1337
INBOUND_PORTS_EXCLUDE=15090,15021,15020
TUNNEL_PORT=15008
ACTION=apply

usage() {
    echo "usage: istio-iptables.sh [-p PORT] [-z PORT] [-u UID] [-g GID] [-d PORTS] [--dry-run|--cleanup]" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        -p) PROXY_PORT=$2; shift 2 ;;
        -z) INBOUND_CAPTURE_PORT=$2; shift 2 ;;
        -u) PROXY_UID=$2; shift 2 ;;
        -g) PROXY_GID=$2; shift 2 ;;
        -d) INBOUND_PORTS_EXCLUDE=$2; shift 2 ;;
        --dry-run) ACTION=dry-run; shift ;;
        --cleanup) ACTION=cleanup; shift ;;
        -h|--help) usage ;;
        *) echo "istio-iptables.sh: unknown argument '$1'" >&2; usage ;;
    esac
done

# The iptables-restore input, line for line in Istio's order.
rules() {
    echo "*nat"
    echo "-N ISTIO_INBOUND"
    echo "-N ISTIO_REDIRECT"
    echo "-N ISTIO_IN_REDIRECT"
    echo "-N ISTIO_OUTPUT"
    echo "-A ISTIO_INBOUND -p tcp --dport $TUNNEL_PORT -j RETURN"
    echo "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports $PROXY_PORT"
    echo "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports $INBOUND_CAPTURE_PORT"
    echo "-A PREROUTING -p tcp -j ISTIO_INBOUND"
    for port in $(echo "$INBOUND_PORTS_EXCLUDE" | tr ',' ' '); do
        echo "-A ISTIO_INBOUND -p tcp --dport $port -j RETURN"
    done
    echo "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT"
    echo "-A OUTPUT -j ISTIO_OUTPUT"
    echo "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN"
    for owner in "--uid-owner $PROXY_UID" "--gid-owner $PROXY_GID"; do
        echo "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport $TUNNEL_PORT -m owner $owner -j ISTIO_IN_REDIRECT"
        echo "-A ISTIO_OUTPUT -o lo -m owner ! $owner -j RETURN"
        echo "-A ISTIO_OUTPUT -m owner $owner -j RETURN"
    done
    echo "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN"
    echo "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"
    echo "COMMIT"
}

cleanup() {
    while iptables -t nat -D PREROUTING -p tcp -j ISTIO_INBOUND 2>/dev/null; do :; done
    while iptables -t nat -D OUTPUT -j ISTIO_OUTPUT 2>/dev/null; do :; done
    # Flush every chain before deleting any: the chains jump to each other.
    for chain in ISTIO_INBOUND ISTIO_REDIRECT ISTIO_IN_REDIRECT ISTIO_OUTPUT; do
        iptables -t nat -F "$chain" 2>/dev/null || true
    done
    for chain in ISTIO_INBOUND ISTIO_REDIRECT ISTIO_IN_REDIRECT ISTIO_OUTPUT; do
        iptables -t nat -X "$chain" 2>/dev/null || true
    done
}

case "$ACTION" in
    dry-run) rules ;;
    cleanup) cleanup ;;
    apply)
        # Re-running replaces the rules instead of failing on "chain already exists".
        if iptables -t nat -S ISTIO_OUTPUT >/dev/null 2>&1; then cleanup; fi
        rules | iptables-restore --noflush
        # Like istio-init: print the nat table as installed (on kind, `kubectl logs POD -c istio-init`).
        iptables-save -t nat
        ;;
esac
