# syntax=docker/dockerfile:1
#
# The dawn-node image: a release build of dawn-node and the dawn CLI on Debian slim, running as
# an unprivileged user with its data in a volume. docs/deployment.md ("Container") explains the
# ports, the volume and the passphrase secret.
#
#   docker build -t dawn-node .
#   docker build --build-arg OTLP=true -t dawn-node:otlp .     # with OTLP trace export
#   docker run -d --name dawn --network host -v dawn-data:/var/lib/dawn dawn-node

ARG RUST_VERSION=1.95.0
ARG DEBIAN=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS build
ARG RUST_VERSION
ARG OTLP=false
# Use the image's toolchain as it is; rust-toolchain.toml would also want rustfmt and clippy.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION} \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; \
    features=""; \
    if [ "$OTLP" = "true" ]; then features="--features dawn-node-bin/otlp"; fi; \
    cargo build --release --locked -p dawn-node-bin -p dawn-cli $features; \
    mkdir -p /out; \
    cp target/release/dawn-node target/release/dawn /out/

FROM debian:${DEBIAN}-slim
# A fixed, unprivileged uid, so a bind-mounted data directory can be given to it
# (chown 10001:10001).
RUN set -eu; \
    groupadd --system --gid 10001 dawn; \
    useradd --system --uid 10001 --gid dawn --home-dir /var/lib/dawn --shell /usr/sbin/nologin dawn; \
    install -d -m 0700 -o dawn -g dawn /var/lib/dawn; \
    install -d -m 0755 /etc/dawn
COPY --from=build /out/dawn-node /out/dawn /usr/local/bin/

USER dawn:dawn
WORKDIR /var/lib/dawn
# QUIC on every interface. The HTTP API stays on loopback, where its Host check holds and the
# admin API answers without a token: reach it with --network host, or see deployment.md for
# publishing it. mDNS needs the host network too, so it is off unless turned on.
ENV HOME=/var/lib/dawn \
    DAWN_DATA_DIR=/var/lib/dawn \
    DAWN_LISTEN=0.0.0.0:7600 \
    DAWN_HTTP=127.0.0.1:7601 \
    DAWN_NODE=http://127.0.0.1:7601 \
    DAWN_LOG_FORMAT=json \
    DAWN_DISCOVERY_MDNS=false
VOLUME ["/var/lib/dawn"]
EXPOSE 7600/udp 7601/tcp
# Liveness: the API answers (dawn status also prints readiness and the agent count).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["dawn", "status"]
# SIGTERM (docker stop) shuts the node down cleanly; give it the default 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["dawn-node"]
CMD ["run"]
