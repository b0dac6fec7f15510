#!/usr/bin/env bash
# Run a command as an unprivileged user (default meshkit-ci, created if missing) against a readable
# copy of this checkout and its venv: the checkout, the venv or its base Python may sit under a
# 0700 folder (/root, a CI workspace) that user cannot enter. Needs root; downloads nothing.
#   .ci/unprivileged.sh python -m pytest tests/notebooks -k solution
set -euo pipefail
cd "$(dirname "$0")/.."
CI_USER=${CI_USER:-meshkit-ci}
DEST=${CI_DEST:-/var/tmp/meshkit-ci}
VENV=${VENV:-.venv}

id -u "$CI_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$CI_USER"
rm -rf "$DEST"
mkdir -p "$DEST/repo"
chmod 755 "$DEST"
# The checkout, without the venv, git objects and caches; owned by the user (pytest writes caches there).
tar --exclude=./.venv --exclude=./.git --exclude='*/__pycache__' --exclude=./.pytest_cache -cf - . \
    | tar -xf - -C "$DEST/repo"
chown -R "$CI_USER:" "$DEST/repo"
# The venv: hard links when on the same filesystem (fast, no space), else a copy; read-only for the user.
cp -al "$VENV" "$DEST/venv" 2>/dev/null || cp -a "$VENV" "$DEST/venv"
chmod -R a+rX "$DEST/venv"
pyv=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
base=$("$VENV/bin/python" -c 'import sys; print(sys.base_prefix)')
if runuser -u "$CI_USER" -- test -x "$base/bin/python$pyv"; then
    home="$base/bin"
elif [ -x "/usr/bin/python$pyv" ]; then
    home=/usr/bin                       # the system's Python of the same minor version
else
    cp -a "$base" "$DEST/python"; chmod -R a+rX "$DEST/python"; home="$DEST/python/bin"
fi
for link in python python3 "python$pyv"; do
    rm -f "$DEST/venv/bin/$link"; ln -s "$home/python$pyv" "$DEST/venv/bin/$link"
done
rm -f "$DEST/venv/pyvenv.cfg"   # a new file, not an edit through a hard link
printf 'home = %s\ninclude-system-site-packages = false\nversion = %s\n' "$home" "$pyv" > "$DEST/venv/pyvenv.cfg"

user_home=$(getent passwd "$CI_USER" | cut -d: -f6)
cd "$DEST/repo"
exec runuser -u "$CI_USER" -- env -i HOME="$user_home" USER="$CI_USER" PATH="$DEST/venv/bin:/usr/local/bin:/usr/bin:/bin" \
    LANG=C.UTF-8 PYTHONPATH="$DEST/repo" MESHKIT_CAPTURE="${MESHKIT_CAPTURE:-userspace}" \
    MESHKIT_HOME="$user_home/.meshkit-ci" "$@"
