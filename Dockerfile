# Builds the single `ledger` binary.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOEXPERIMENT=jsonv2 go build -trimpath -o /out/ledger ./cmd/ledger

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/ledger /ledger
EXPOSE 8080
ENTRYPOINT ["/ledger"]
CMD ["serve"]
