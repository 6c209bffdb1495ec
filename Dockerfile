# mdagg container image. Build:  docker build -t mdagg .   (or: buildah bud -t mdagg .)
#   --build-arg BASE=...  another Debian 12 image (both stages; the CI test uses a local one)
#   --build-arg JOBS=N    compiler jobs (default: every CPU the build sees)
ARG BASE=debian:bookworm-slim

# ---- build: scripts/setup.sh's build packages (not the test tools) and test.sh's build type
# (Release), so the image ships what CI tested ----
FROM ${BASE} AS build
ARG JOBS=
ENV DEBIAN_FRONTEND=noninteractive CCACHE_DIR=/root/.cache/ccache
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
# The cache mounts only speed up rebuilds on one machine (ccache and apt are keyed by content).
RUN --mount=type=cache,target=/var/cache/apt/archives,sharing=locked \
    bash scripts/setup.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMDAGG_TESTS=OFF \
 && cmake --build /build -j "${JOBS:-$(nproc)}" --target mdagg mdagg-sim \
 && mkdir -p /out \
 && strip --strip-debug -o /out/mdagg /build/mdagg \
 && strip --strip-debug -o /out/mdagg-sim /build/mdagg-sim \
 && /out/mdagg --version

# ---- runtime: the shared libraries the binaries link, the CA certificates HTTPS venues are
# verified against, a non-root user, nothing else ------------------------------------------
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends libspdlog1.10 libfmt9 libyaml-cpp0.7 libssl3 librdkafka1 libsimdjson14 \
        ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/mdagg --no-create-home \
        --shell /usr/sbin/nologin mdagg \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/mdagg
COPY --from=build /out/mdagg /out/mdagg-sim /usr/local/bin/
COPY config/demo.yaml /etc/mdagg/config.yaml
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
# The demo config writes ./out: under the data directory, the one place the daemon writes.
WORKDIR /var/lib/mdagg
# Exec form: mdagg itself is PID 1 and receives the SIGTERM that starts its drain.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mdagg"]
CMD ["--config", "/etc/mdagg/config.yaml"]
