# airlock's container image, for machines with a container daemon. CI builds the same image
# without one: `make image` (internal/cmd/image, go-containerregistry). See README "Run it as a
# service" and RATIONALE.md "Container image".
#
#   docker build -t airlock:dev --build-arg VERSION=$(git describe --always --dirty) --build-arg COMMIT=$(git rev-parse HEAD) .
#   docker run --rm --read-only airlock:dev --version
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/airlock ./cmd/airlock
# The demo's plugins, prebuilt: the image has no Go toolchain.
RUN mkdir -p /out/data && go run ./internal/cmd/image --demo-plugins /out/demo

# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot (65532); no shell, no libc.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/airlock /usr/local/bin/airlock
COPY --from=build /out/demo /usr/share/airlock/demo
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV HOME=/data AIRLOCK_STATE_DIR=/data AIRLOCK_DEMO_PLUGINS=/usr/share/airlock/demo
VOLUME /data
EXPOSE 8700
ENTRYPOINT ["/usr/local/bin/airlock"]
CMD ["serve", "--http", "0.0.0.0:8700"]
