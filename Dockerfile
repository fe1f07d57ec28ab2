# ws-server image: a static binary on an empty base (nothing to pull, no shell, no package
# manager). Its inputs are staged by scripts/stage-image into target/image/, the only thing
# .dockerignore lets into the build context.
#
# Order matters for speed with the classic builder: the settings come first and stay cached,
# so a new binary re-runs only the last COPY (and the LABEL when REVISION changes).
FROM scratch

# Set by the builder (e.g. the git commit); informational only.
ARG REVISION=unknown

ENV WEBSOCKET_HOST=0.0.0.0 \
    WEBSOCKET_PORT=8080 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ws-server"]

# Rarely changes: the unprivileged user and the CA bundle (TLS to AWS APIs). Its own layer,
# so a new binary pushes only the layer below.
COPY target/image/rootfs/ /
COPY target/image/ws-server /usr/local/bin/ws-server

LABEL org.opencontainers.image.title="ws-server" \
      org.opencontainers.image.description="AgenticAI WebSocket server" \
      org.opencontainers.image.revision="${REVISION}"
