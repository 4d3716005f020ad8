#!/usr/bin/env bash
# Each line is ours (a finding) or not (a trap): the precision of the run-isolation rules.
f=$(mktemp "${TMPDIR:-/tmp}/e2e.XXXXXX")
g=$(mktemp "$TMPDIR/e2e.XXXXXX")
echo log > "/tmp/out-$$.log"
cp "$f" "${TMPDIR:-/tmp}/state.json"
echo log > /tmp/out.log
docker run --rm -v "$PWD:/tmp/work" img cat /tmp/in.txt
docker run --rm -v /tmp/cache:/cache img true
docker run --rm img sh -c 'echo x > /tmp/x'
kubectl exec -n "$NS" pod -- pkill -f app
docker exec ctr pkill app
pkill -f app
