# Minimal image until the Kubernetes issue hardens it (non-root user, probes, slim runtime).
ARG BASE=debian:bookworm
FROM ${BASE} AS build
WORKDIR /src
COPY . .
RUN bash scripts/setup.sh && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMDAGG_TESTS=OFF \
    && cmake --build build --target mdagg mdagg-sim

FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends libspdlog1.10 libyaml-cpp0.7 libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/mdagg /src/build/mdagg-sim /usr/local/bin/
COPY config/demo.yaml /etc/mdagg/config.yaml
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mdagg", "--config", "/etc/mdagg/config.yaml"]
