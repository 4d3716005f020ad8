FROM fedora:40
RUN dnf install -y git
FROMM fedora:41
RUN dnf update -y
