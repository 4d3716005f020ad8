# The same binary as a second image: the probe role that later flows deploy beside the service.
FROM scratch
# TARGET: the Rust target of the kind node's platform (`cargo xtask setup` passes it).
ARG TARGET=x86_64-unknown-linux-gnu
COPY target/${TARGET}/release/e2e-demo /e2e-demo
ENV DEMO_ROLE=probe
USER 65534:65534
ENTRYPOINT ["/e2e-demo", "--role", "probe"]
