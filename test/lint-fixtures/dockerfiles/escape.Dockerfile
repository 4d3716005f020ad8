# escape=`

FROM registry.example/ubi9 AS win
RUN dnf install -y git `
    && dnf `
    update -y
RUN echo done \
RUN echo "dnf update" `
    > /dev/null
