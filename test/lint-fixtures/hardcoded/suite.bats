#!/usr/bin/env bats

@test "the audit log is written in the pod" {
  run kubectl exec -n "$NS" pod -- cat /tmp/audit.log
  kubectl cp "$NS/pod:/tmp/report" "$BATS_TEST_TMPDIR/report"
  echo "look in /tmp/x"
}

@test 'a fixed file on this machine' {
  run -0 kubectl get pods > /tmp/pods.txt
}
