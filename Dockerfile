# pwsync's container image: the static-ish binary, glibc, TLS roots and zones from Debian, nothing
# else (no shell), run as user 10001.
#
#   docker build -t pwsync .                       # from source: a Rust builder stage
#
# The release images (amd64 and arm64, and the Home Assistant app's) are made from prebuilt
# binaries by deploy/scripts/build-images.sh with deploy/image/Dockerfile.
#
# Configuration: /config/pwsync.toml (the working directory, so the file is optional) or
# PWSYNC_* variables. State (serve's heartbeat for the HEALTHCHECK): /data.

# Debian to take the runtime files from; CI passes a debootstrap-made image here.
ARG BASE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1-bookworm

FROM ${BASE} AS rootfs
# Only what a Rust binary linked against glibc loads, found per architecture by glob.
RUN set -eu; \
    if ! dpkg -s ca-certificates tzdata >/dev/null 2>&1; then \
        apt-get update; \
        apt-get install -y --no-install-recommends ca-certificates tzdata; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    mkdir -p /rootfs/etc/ssl/certs /rootfs/usr/share /rootfs/usr/local/bin /rootfs/tmp \
        /state/data /state/config; \
    cp -L /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/; \
    cp -a /usr/share/zoneinfo /rootfs/usr/share/; \
    rm -rf /rootfs/usr/share/zoneinfo/right; \
    for lib in libc.so.6 libm.so.6 libgcc_s.so.1; do \
        cp -L --parents /lib/*-linux-gnu/$lib /rootfs/; \
    done; \
    for ld in /lib*/ld-linux*.so.*; do cp -L --parents "$ld" /rootfs/; done; \
    chmod 1777 /rootfs/tmp; \
    echo 'root:x:0:0:root:/root:/nonexistent' >/rootfs/etc/passwd; \
    echo 'pwsync:x:10001:10001:pwsync:/data:/nonexistent' >>/rootfs/etc/passwd; \
    printf 'root:x:0:\npwsync:x:10001:\n' >/rootfs/etc/group

FROM scratch AS runtime-base
COPY --from=rootfs /rootfs/ /
COPY --from=rootfs --chown=10001:10001 /state/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PWSYNC_STATE_DIR=/data
WORKDIR /config
USER 10001:10001
# Unhealthy when serve's last successful poll is older than 3 polls + 30 s (InfluxDB or the
# broker gone, or serve stuck); the start period covers the first poll's lifetime meters.
HEALTHCHECK --interval=60s --timeout=10s --start-period=5m --retries=2 CMD ["pwsync", "health"]
LABEL org.opencontainers.image.title="pwsync" \
      org.opencontainers.image.description="Powerwall-Dashboard InfluxDB to Home Assistant: live sensors, backfill, migration, check and repair" \
      org.opencontainers.image.licenses="MIT"
ENTRYPOINT ["pwsync"]
CMD ["serve"]

FROM ${RUST_IMAGE} AS builder
# npm: crates/web/build.rs fetches the panel's chart library at its pinned version.
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p pwsync \
    && strip -o /pwsync target/release/pwsync

# The default target: built from source.
FROM runtime-base AS runtime
COPY --from=builder /pwsync /usr/local/bin/pwsync
