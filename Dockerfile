# Multi-stage build: compile with the Rust toolchain, ship only the binary on a slim
# Debian base, running as an unprivileged user.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock askama.toml ./
COPY src ./src
COPY assets ./assets
RUN cargo build --release --locked \
 && strip target/release/gatehouse

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/gatehouse --shell /usr/sbin/nologin gatehouse \
 && mkdir -p /var/lib/gatehouse /etc/gatehouse \
 && chown gatehouse:gatehouse /var/lib/gatehouse
COPY --from=build /src/target/release/gatehouse /usr/local/bin/gatehouse
COPY config/gatehouse.example.toml /etc/gatehouse/gatehouse.example.toml
USER gatehouse
WORKDIR /var/lib/gatehouse
VOLUME ["/var/lib/gatehouse"]
# Listen on all interfaces inside the container; mount your own config at
# /etc/gatehouse/gatehouse.toml (see the example next to it).
ENV GATEHOUSE_CONFIG=/etc/gatehouse/gatehouse.toml \
    GATEHOUSE_SERVER__LISTEN=0.0.0.0:9091 \
    GATEHOUSE_SERVER__DATA_DIR=/var/lib/gatehouse
EXPOSE 9091 8080
ENTRYPOINT ["gatehouse"]
CMD ["serve"]
