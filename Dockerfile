# Builds the single `ledger` binary into a non-root image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOEXPERIMENT=jsonv2 go build -trimpath -o /out/ledger ./cmd/ledger

# distroless "nonroot": uid/gid 65532, no shell; the health check is the
# binary's own `ledger probe`.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ledger /ledger
USER nonroot:nonroot
WORKDIR /home/nonroot
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=4s --start-period=60s --retries=3 CMD ["/ledger", "probe"]
ENTRYPOINT ["/ledger"]
CMD ["serve"]
