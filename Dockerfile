# The Lumen sidecar image: built in the Rust image, run from a small
# distroless base as a non-root user. No HEALTHCHECK: Cloud Run probes
# /healthz itself (see deploy/cloudrun/service.yaml).
#
#   docker build -t REGION-docker.pkg.dev/PROJECT_ID/lumen/lumen-sidecar:latest .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p lumen-sidecar --bin lumen-sidecar \
 && cp target/release/lumen-sidecar /lumen-sidecar

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /lumen-sidecar /usr/local/bin/lumen-sidecar
USER nonroot:nonroot
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/lumen-sidecar"]
CMD ["serve"]
