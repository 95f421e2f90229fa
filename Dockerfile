# syntax=docker/dockerfile:1.7
# The product's two images, each one static binary on an empty base, run as 65532:65532.
# Build from the repository root (the whole Cargo workspace is the context), picking the image by target:
#   docker build --target lifecycle-webhook -t ghcr.io/lifecycle-jobs/lifecycle-webhook:v0.1.0 .
#   docker build --target lifecycle-agent   -t ghcr.io/lifecycle-jobs/lifecycle-agent:v0.1.0 .
# `make images` (tests/cluster/images.sh) produces the same layout without an engine.

ARG RUST_IMAGE=rust:1.95-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# Static glibc (crt-static) for the builder's own triple (x86_64-unknown-linux-gnu
# on amd64; aarch64 on arm64); an explicit --target keeps build scripts and proc
# macros dynamic. The cargo home path stays out of the binaries. One cargo
# invocation per binary: features unify within an invocation, and the agent must
# not get the server's (rustls' TLS 1.2 and logging); dependencies built alike
# are shared. Each image copies only its own.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eux; \
    target="$(rustc -vV | sed -n 's/^host: //p')"; \
    export RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=/usr/local/cargo=/cargo"; \
    for bin in lifecycle-webhook lifecycle-agent; do \
      cargo build --release --locked --target "$target" -p "$bin"; \
    done; \
    for bin in lifecycle-webhook lifecycle-agent; do \
      install -D -m 0755 "target/$target/release/$bin" "/out/$bin"; \
      if readelf -l "/out/$bin" | grep -q INTERP; then \
        echo "$bin is dynamically linked; the images carry static binaries only" >&2; exit 1; \
      fi; \
    done
# The rest of the root filesystem: CA certificates, a nonroot user (the
# distroless convention, uid/gid 65532) and a writable /tmp.
RUN set -eux; \
    mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/home/nonroot; \
    install -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >/rootfs/etc/passwd; \
    printf 'root:x:0:\nnonroot:x:65532:\n' >/rootfs/etc/group; \
    chmod 0644 /rootfs/etc/passwd /rootfs/etc/group; \
    chmod 1777 /rootfs/tmp; \
    chown 65532:65532 /rootfs/home/nonroot

FROM scratch AS runtime
COPY --from=build /rootfs/ /
# Owner and mode spelled out: they must not depend on how COPY treats them.
COPY --from=build --chown=65532:65532 /rootfs/home/nonroot /home/nonroot
COPY --from=build --chmod=1777 /rootfs/tmp /tmp
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /

FROM runtime AS lifecycle-agent
COPY --from=build /out/lifecycle-agent /usr/local/bin/lifecycle-agent
ENTRYPOINT ["/usr/local/bin/lifecycle-agent"]

# The last stage is the default target.
FROM runtime AS lifecycle-webhook
COPY --from=build /out/lifecycle-webhook /usr/local/bin/lifecycle-webhook
ENTRYPOINT ["/usr/local/bin/lifecycle-webhook"]
