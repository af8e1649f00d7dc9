#!/usr/bin/env bash
# deploy/test-image.sh: build the image with podman and run it the way the pod runs it, with no
# registry: read-only root, all capabilities dropped, uid 10001, config and keys mounted read-only.
#
# Run as root from anywhere: deploy/test-image.sh   (needs podman, runc, debootstrap; the venv at
# .venv for the host-side demo link). What it does:
#   1. /etc/containers/containers.conf (runc, ulimits) if there is none;
#   2. the Dockerfile's base image (python:3.11-slim) made locally: debootstrap minbase bookworm
#      with python3 from the Debian mirror apt uses, imported under that tag (done once);
#   3. podman build --format docker (keeps HEALTHCHECK) --pull=never, with the machine's CA bundle
#      and pip config bind-mounted into the RUN steps only (nothing lands in a layer);
#   4. checks: the production image has no demo and refuses `demo: true` clearly; uid 10001;
#      then, on the `demo` target (the production image plus gateway/demo, nothing else): read-only
#      root, /healthz and /readyz, HEALTHCHECK healthy, a whole demo link through the container
#      from the host, SIGTERM drain time and exit code; the production image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${TAG:-localhost/gateway:test}
DEMO_TAG="$TAG-demo"
NAME=gateway-test-image
WORK=${WORK:-/var/tmp/gateway-test-image}
BASE=$(awk 'toupper($1) == "FROM" {print $2; exit}' Dockerfile)
START=$SECONDS
say() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }
fail() { say "FAIL: $*"; exit 1; }

# ---- 1. the container runtime's config ---------------------------------------------------------
if [ ! -f /etc/containers/containers.conf ]; then
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=1000:1000"]

[engine]
runtime = "runc"
CONF
  say "wrote /etc/containers/containers.conf"
fi

# ---- 2. the base image, made locally -------------------------------------------------------------
BASE_REF="docker.io/library/$BASE"
if ! podman image exists "$BASE_REF"; then
  MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
  rm -rf "$WORK/rootfs" && mkdir -p "$WORK"
  say "debootstrap bookworm from $MIRROR"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3 bookworm "$WORK/rootfs" "$MIRROR" \
    > "$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap"; }
  rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
  tar -C "$WORK/rootfs" -c . | podman import --change 'CMD ["python3"]' - "$BASE_REF" > /dev/null
  rm -rf "$WORK/rootfs"
  say "imported the base as $BASE_REF"
fi

# ---- 3. build ------------------------------------------------------------------------------------
mounts=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
[ -f /etc/pip.conf ] && mounts+=(-v /etc/pip.conf:/etc/pip.conf:ro)
say "podman build $TAG"
podman build --format docker --pull=never "${mounts[@]}" -t "$TAG" . > "$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log"; fail "build"; }
say "built: $(podman image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.1f MB", $1/1e6}')"
podman build --format docker --pull=never "${mounts[@]}" --target demo -t "$DEMO_TAG" . > "$WORK/build-demo.log" 2>&1 \
  || { tail -30 "$WORK/build-demo.log"; fail "build --target demo"; }
say "built the demo target $DEMO_TAG"
[ "$(podman image inspect --format '{{.Config.Healthcheck.Test}}' "$TAG")" != "[]" ] || fail "the image has no HEALTHCHECK"

# ---- 4. run it as the pod does --------------------------------------------------------------------
uid=$(podman run --rm --entrypoint id "$TAG" -u)
[ "$uid" = 10001 ] || fail "runs as uid $uid, not 10001"
say "uid $uid"
podman run --rm --entrypoint python "$TAG" -c \
  'import importlib.util, sys; sys.exit(importlib.util.find_spec("gateway.demo") is not None)' \
  || fail "the production image holds the demo"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
OPS=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUN="$WORK/run" && rm -rf "$RUN" && mkdir -p "$RUN/config" "$RUN/mappings"
# The pod's config with the demo on and a loopback public URL (the demo's upstream is the gateway
# itself, reached through public_url from inside the container: hence the same port both sides).
cat > "$RUN/config/gateway.yaml" <<YAML
listen: {host: 0.0.0.0, port: $PORT}
metrics: {host: 0.0.0.0, port: $OPS}
public_url: http://127.0.0.1:$PORT
keys_file: /run/secrets/gateway/keys
cookie: {secure: false}
mappings: ../mappings
providers: []
demo: true
log: {format: json}
YAML
(umask 077 && .venv/bin/gateway keygen > "$RUN/keys") && chown 10001:10001 "$RUN/keys"
refusal=$(podman run --rm -v "$RUN/config:/etc/gateway/config:ro" -v "$RUN/mappings:/etc/gateway/mappings:ro" \
  -v "$RUN/keys:/run/secrets/gateway/keys:ro" "$TAG" check --config /etc/gateway/config/gateway.yaml 2>&1) \
  && fail "the production image accepted demo: true"
grep -q "this installation has no demo" <<< "$refusal" || { echo "$refusal"; fail "demo: true refused without saying why"; }
say "the production image has no demo and says so: $(grep -o 'demo: true, but[^(]*' <<< "$refusal")"
podman rm -f "$NAME" > /dev/null 2>&1 || true
podman run -d --name "$NAME" --network host --read-only --cap-drop ALL --security-opt no-new-privileges \
  --tmpfs /tmp --user 10001:10001 \
  -v "$RUN/config:/etc/gateway/config:ro" -v "$RUN/mappings:/etc/gateway/mappings:ro" \
  -v "$RUN/keys:/run/secrets/gateway/keys:ro" "$DEMO_TAG" > /dev/null
trap 'podman rm -f "$NAME" > /dev/null 2>&1 || true' EXIT
ready=$SECONDS
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$OPS/readyz" > /dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$OPS/readyz" > /dev/null || { podman logs "$NAME" | tail -20; fail "/readyz"; }
say "ready in about $((SECONDS - ready)) s: /readyz $(curl -sS "http://127.0.0.1:$OPS/readyz" | head -1)"
curl -fsS "http://127.0.0.1:$OPS/healthz" > /dev/null || fail "/healthz on the ops port"
curl -fsS "http://127.0.0.1:$PORT/healthz" > /dev/null || fail "/healthz on the public port"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")" = 404 ] || fail "/metrics on the public port"
curl -fsS "http://127.0.0.1:$OPS/metrics" | grep -q gateway_build_info || fail "/metrics on the ops port"
if podman exec "$NAME" sh -c 'touch /opt/gateway/x' 2> /dev/null; then fail "the root filesystem is writable"; fi
say "read-only root, /healthz, /readyz, /metrics only on the ops port"
podman healthcheck run "$NAME" > /dev/null || fail "HEALTHCHECK"
say "HEALTHCHECK: $(podman inspect --format '{{.State.Health.Status}}' "$NAME")"

PYTHONPATH=tests .venv/bin/python - "$PORT" <<'PY' || fail "demo link"
import asyncio, sys
import aiohttp
from support.oidc_provider import login_and_consent

async def main(url: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:  # an IP host
        callback = await login_and_consent(browser, f"{url}/_demo/platform/start", stop_at_prefix=f"{url}/_demo/platform/callback", login="podman")
        async with browser.get(callback) as response:
            page = await response.text()
        assert response.status == 200 and "Linked" in page and "podman" in page, page[:300]

asyncio.run(main(f"http://127.0.0.1:{sys.argv[1]}"))
PY
say "a whole demo link through the container from the host: linked"

# SIGTERM with a request in flight whose body arrives a second after the signal: it must be read
# and answered (gateway/web/runner.py reads a running request's body through the shutdown),
# not held until shutdown_grace and answered 408. The answer here is the token error.
stop=$(date +%s.%N)
.venv/bin/python - "$PORT" "$NAME" <<'PY' || fail "a request whose body was still arriving at SIGTERM was not answered"
import socket, subprocess, sys, time
port, name = int(sys.argv[1]), sys.argv[2]
body = b"grant_type=authorization_code&code=x&redirect_uri=y"
with socket.create_connection(("127.0.0.1", port)) as sock:
    sock.sendall(b"POST /demo/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
    time.sleep(0.3)
    subprocess.run(["podman", "kill", "--signal", "TERM", name], check=True, capture_output=True)
    time.sleep(1.0)
    sock.sendall(body)
    status = sock.recv(4096).split(b"\r\n", 1)[0].decode()
print(f"in flight across SIGTERM: {status}")
assert status == "HTTP/1.1 401 Unauthorized", status  # no client credentials: read, then refused
PY
podman wait "$NAME" > /dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
say "SIGTERM: drained and exited in $(python3 -c "import time; print(f'{time.time() - $stop:.1f}')") s, exit code $code"
podman logs "$NAME" 2>&1 | tail -3
say "OK: image $(podman image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.1f MB", $1/1e6}'), total $((SECONDS - START)) s"
