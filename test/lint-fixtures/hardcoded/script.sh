#!/usr/bin/env bash
# kubectl -n sut get pods   (a comment: never a finding)
set -euo pipefail
NS=sut
kubectl get pods -n sut
kubectl apply --namespace=sut -f x.yaml
echo "deploying to sut; pkill is never used here"
kubectl get deploy -n sut-helper
kubectl get results
KEY=/tmp/e2e-ssh-key
KEY_RUN=/tmp/e2e-ssh-key-${E2E_RUN_ID}
mkdir -p /tmp
git config --global url.x.insteadOf y
git -C repo config user.name x
pkill -f "kubectl.*port-forward"
sudo killall kubectl
kill $PID
kubectl delete pods --all -n "$NS"
kubectl delete ns "$NS" -l run=x
kubectl delete pvc -A
curl http://localhost:8080/healthz
curl http://localhost:13000/api/v1/version
cat <<EOF | kubectl apply -f -
metadata:
  namespace: sut
EOF
