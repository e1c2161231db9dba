package infra

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeDeployAndSecuritySections checks that README.md keeps its Deploy and Security model
// sections, that the commands they show match the files, and that every path they name exists.
func TestReadmeDeployAndSecuritySections(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	section := func(title string) string {
		i := strings.Index(readme, "\n## "+title+"\n")
		if i < 0 {
			t.Fatalf("README.md has no \"## %s\" section", title)
		}
		rest := readme[i+1:]
		if j := strings.Index(rest[3:], "\n## "); j >= 0 {
			return rest[:j+3]
		}
		return rest
	}
	deploy, security := section("Deploy"), section("Security model")
	for _, want := range []string{
		"./scripts/package.sh",
		"az deployment group create -g kvrotator-rg --template-file infra/azuredeploy.json",
		"--parameters @infra/azuredeploy.parameters.json",
		"az functionapp deployment source config-zip",
		"https://portal.azure.com/#create/Microsoft.Template/uri/",
		".github/workflows/deploy.yml",
		"deploy/README.md",
	} {
		if !strings.Contains(deploy, want) {
			t.Errorf("README Deploy section lacks %q", want)
		}
	}
	for _, want := range []string{"Managed identity", "No secret in any setting", "least privilege", "private endpoint", "purge protection", "Audit logs", "Defender", "Event filter", "dead-letter", "Rotation itself", "What kvrotator needs from you"} {
		if !strings.Contains(strings.ToLower(security), strings.ToLower(want)) {
			t.Errorf("README Security model section lacks %q", want)
		}
	}
	for _, m := range regexp.MustCompile(`(?:infra|deploy|scripts|\.github/workflows)/[\w./-]+\.(?:json|sh|md|yml|service|timer|example)`).FindAllString(deploy+security, -1) {
		if m == "infra/azuredeploy.parameters.json" { // the user's copy of the example
			continue
		}
		if _, err := os.Stat("../" + m); err != nil {
			t.Errorf("README names %s, which does not exist", m)
		}
	}
}
