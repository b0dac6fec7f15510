# Shared by the fake docker/kind/kubectl. Sourced, not run.
#   FAKE_LOG      file that gets one line per call: the program and its argv, shell-quoted
#   FAKE_FAIL     ';'-separated globs matched against "<program> <args>"; a match fails the call
#                 with the message the real program prints for that failure
set -u
FAKE_CMD="$FAKE_PROG $*"
if [ -n "${FAKE_LOG:-}" ]; then
    printf '%q ' "$FAKE_PROG" "$@" | sed 's/ $//' >> "$FAKE_LOG"
    echo >> "$FAKE_LOG"
fi

# fake_fails "MESSAGE": exit 1 with MESSAGE on stderr when FAKE_FAIL matches this call.
fake_fails() {
    local IFS=';'
    for pattern in ${FAKE_FAIL:-}; do
        # shellcheck disable=SC2053
        if [[ $FAKE_CMD == $pattern ]]; then
            echo "$1" >&2
            exit 1
        fi
    done
}
