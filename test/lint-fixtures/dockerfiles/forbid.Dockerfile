# syntax=docker/dockerfile:1
FROM registry.access.redhat.com/ubi9/ubi:latest AS builder
# RUN dnf update -y  (a comment line is never a finding)
LABEL description="runs dnf update nightly"
RUN echo "dnf update" && yum check-update || true
RUN dnf install -y update-motd python3-dnf-plugin-versionlock
RUN dnf -y --setopt=tsflags=nodocs update && dnf clean all
RUN sudo /usr/bin/dnf $DNF_OPTS upgrade
RUN dnf \
      update -y
RUN microdnf update tzdata
ONBUILD RUN yum -y update
RUN ["dnf", "distro-sync", "-y"]
RUN <<EOF
set -e
dnf upgrade-minimal -y
cat <<'DATA' > /etc/motd
dnf update is not run here
DATA
EOF
HEALTHCHECK --interval=30s CMD ["curl", "-f", "http://localhost/"] || exit 1
run if [ -x /usr/bin/dnf ]; then env LANG=C dnf update -y; fi
RUN dnf install -y git && \
    # a comment line inside the continuation is dropped
    dnf update -y && \
    dnf clean all
FROM scratch
COPY --from=builder /app /app
