# The demo service: a static binary in an empty image (no registry is needed to build it).
# Built by `cargo xtask setup` after `cargo build --release -p e2e-demo` (static, glibc crt-static).
FROM scratch
# TARGET: the Rust target of the kind node's platform (`cargo xtask setup` passes it).
ARG TARGET=x86_64-unknown-linux-gnu
COPY target/${TARGET}/release/e2e-demo /e2e-demo
EXPOSE 8080
USER 65534:65534
ENTRYPOINT ["/e2e-demo"]
