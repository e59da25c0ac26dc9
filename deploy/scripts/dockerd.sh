#!/usr/bin/env bash
# A Docker daemon for the packaging tests, on its own socket, with its images under the cache
# (vfs storage: works where overlayfs does not, e.g. inside a container).
#   eval "$(deploy/scripts/dockerd.sh start)"   # starts dockerd unless one answers; exports DOCKER_HOST
#   deploy/scripts/dockerd.sh stop              # stops it by PID, only if `start` started it
set -euo pipefail
cache=${PWSYNC_CACHE:-$HOME/.cache/pwsync}
root=${PWSYNC_DOCKER_ROOT:-$cache/docker}
sock="$root/docker.sock"
pidfile="$root/dockerd.pid"
docker=/usr/bin/docker          # Debian's docker.io client, matching its daemon
[ -x "$docker" ] || docker=$(command -v docker)

case "${1:-}" in
start)
    mkdir -p "$root"
    if ! DOCKER_HOST="unix://$sock" "$docker" info >/dev/null 2>&1; then
        command -v dockerd >/dev/null || { echo "dockerd missing: apt-get install docker.io" >&2; exit 1; }
        # exec-root holds sockets: keep its path short.
        exec_root="/run/pwsync-docker-$(id -u)"
        dockerd --storage-driver=vfs --data-root "$root/data" --exec-root "$exec_root" \
            --pidfile "$pidfile" -H "unix://$sock" >"$root/dockerd.log" 2>&1 </dev/null &
        for _ in $(seq 1 120); do
            DOCKER_HOST="unix://$sock" "$docker" info >/dev/null 2>&1 && break
            if ! kill -0 $! 2>/dev/null; then
                echo "dockerd exited: $(tail -5 "$root/dockerd.log")" >&2
                exit 1
            fi
            sleep 0.5
        done
        DOCKER_HOST="unix://$sock" "$docker" info >/dev/null 2>&1 \
            || { echo "dockerd did not answer within 60 s: $(tail -5 "$root/dockerd.log")" >&2; exit 1; }
        echo $! >"$root/started-by-us"
    fi
    echo "export DOCKER_HOST=unix://$sock"
    ;;
stop)
    if [ -s "$root/started-by-us" ]; then
        pid=$(cat "$root/started-by-us")
        rm -f "$root/started-by-us"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
