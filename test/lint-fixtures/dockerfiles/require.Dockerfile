FROM fedora:40 AS base
RUN dnf -y update && dnf install -y git
FROM base AS child
RUN dnf install -y make
FROM fedora:40 AS lazy
RUN dnf install -y gcc
RUN dnf update -y
FROM fedora:40 AS nopkgs
RUN echo hi
FROM fedora:40
RUN dnf update -y
RUN dnf install -y curl
