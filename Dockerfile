# fraiseql-node: a static binary on a minimal base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
ARG COMMIT=
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/fraiseql-node ./cmd/fraiseql-node

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fraiseql-node /usr/local/bin/fraiseql-node
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/fraiseql-node"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
