package e2e

import "os/exec"

func forward(ns string) {
	_ = exec.Command("kubectl", "port-forward", "-n", ns, "svc/api", "8443:8443")
	_ = exec.Command("kubectl", "port-forward", "-n", ns, "svc/api", ":8443")
	_ = exec.Command("kubectl", "exec", "-n", ns, "pod", "--", "pkill", "app")
}
