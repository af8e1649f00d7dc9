# gateway: the OAuth2 account-linking gateway, as a small, non-root container image.
#
#   docker build -t gateway:0.1.0 .
#   docker run --rm gateway:0.1.0 keygen            # make a sealing key
#   docker run --rm -p 8080:8080 \
#     -v "$PWD/deploy/gateway.yaml:/etc/gateway/config/gateway.yaml:ro" \
#     -v "$PWD/mappings:/etc/gateway/mappings:ro" \
#     -v "$PWD/keys:/run/secrets/gateway/keys:ro" \
#     -e GATEWAY_PUBLIC_URL=https://link.example.com -e GITHUB_CLIENT_ID=... \
#     gateway:0.1.0
#
# The image holds the program only, without the embedded demo (its secrets are public):
# `demo: true` is refused with a clear message. `--target demo` builds the same image with it.
# The image holds no config either. The config (/etc/gateway/config/gateway.yaml), the mappings
# (/etc/gateway/mappings/) and the keys (/run/secrets/gateway/keys, or GATEWAY_KEY) are mounted
# or passed at run time; see deploy/README.md.

# ---- build: install the package and its runtime dependencies into a virtualenv -------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/gateway
WORKDIR /src
# Only what `pip install .` needs (see .dockerignore): no tests, no test extras.
COPY pyproject.toml README.md constraints.txt ./
COPY gateway/ gateway/
# Runtime dependencies only (`.[uvloop]`, never `.[test]`), at the versions pinned in constraints.txt
# (pip-compile; see README.md); byte-code is compiled here because the root filesystem is
# read-only at run time. pip and setuptools are not needed to run.
# The demo stays out of the production image (it is found by name only: gateway/config/optional.py).
RUN rm -rf gateway/demo \
 && /opt/gateway/bin/pip install -c constraints.txt '.[uvloop]' \
 && /opt/gateway/bin/python -m compileall -q /opt/gateway/lib \
 && /opt/gateway/bin/pip uninstall -y pip setuptools

# ---- runtime ---------------------------------------------------------------------------------
FROM python:3.11-slim AS production

LABEL org.opencontainers.image.title="gateway" \
      org.opencontainers.image.description="OAuth2 account-linking gateway (Alexa, Google Home)" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# A fixed, numeric, unprivileged user: Kubernetes' runAsNonRoot can verify a numeric USER.
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin gateway \
 && mkdir -p /etc/gateway/config /etc/gateway/mappings /run/secrets/gateway

COPY --from=build /opt/gateway /opt/gateway

USER 10001:10001
WORKDIR /etc/gateway
# 8080: the public listener (listen.port); 9090: the ops listener (metrics.port in deploy/gateway.yaml).
EXPOSE 8080 9090

# Liveness: /healthz answers while the process is alive. `gateway health` reads the port and
# scheme from the mounted config (the ops port if `metrics:` is set, else listen.port, https
# with `tls:`), so the check follows the config instead of assuming http on 8080.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["gateway", "health", "--config", "/etc/gateway/config/gateway.yaml"]

# The gateway drains in-flight requests on SIGTERM (shutdown_grace, 10 s by default).
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway"]
CMD ["serve", "--config", "/etc/gateway/config/gateway.yaml"]

# ---- demo: the production image plus the embedded demo (`podman build --target demo`) -------------
# For trying the image out and for deploy/test-image.sh's whole link; never for a gateway that
# faces the internet.
FROM production AS demo
COPY --chown=0:0 gateway/demo/ /opt/gateway/lib/python3.11/site-packages/gateway/demo/

# The default target is the last stage: the production image.
FROM production
