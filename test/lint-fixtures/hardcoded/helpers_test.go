package e2e

// The namespace used to be "sut"; pkill was used for cleanup.
const testNamespace = "sut"

var gatewayURL = "http://localhost:8080"
var giteaURL = "http://localhost:13000"

func cleanup(runID string) {
	exec.Command("pkill", "-f", "port-forward").Run()
	exec.Command("git", "config", "--global", "user.name", "x").Run()
	exec.Command("kubectl", "delete", "ns", "--all-namespaces").Run()
	fmt.Println("results are in /tmp")
	os.WriteFile("/tmp/e2e-ssh-key", nil, 0600)
	os.WriteFile(fmt.Sprintf("/tmp/e2e-ssh-key-%s", runID), nil, 0600)
	fmt.Println("never pkill", "sut-helper")
	query := `up{cluster_id='kind-e2e'}`
	_ = query
}
