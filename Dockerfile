# Multi-stage build: a static binary on a distroless, non-root base with no
# shell. Build: docker build -t backgate . ; run: docker run -v CONFIG:/etc/backgate backgate
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/backgate ./cmd/backgate \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/backgate /usr/local/bin/backgate
COPY --from=build --chown=nonroot:nonroot /out/data /var/lib/backgate
USER nonroot:nonroot
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/backgate"]
CMD ["serve", "--config", "/etc/backgate/backgate.yaml"]
