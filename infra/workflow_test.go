package infra

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

const workflowFile = "../.github/workflows/deploy.yml"

func loadWorkflow(t *testing.T) (map[string]any, string) {
	t.Helper()
	b, err := os.ReadFile(workflowFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := parseYAML(string(b))
	if err != nil {
		t.Fatalf("%s: %v", workflowFile, err)
	}
	m, ok := doc.(map[string]any)
	if !ok {
		t.Fatalf("%s: want a mapping at the top", workflowFile)
	}
	return m, string(b)
}

// steps returns a job's steps.
func steps(t *testing.T, wf map[string]any, job string) []map[string]any {
	t.Helper()
	raw, ok := get(wf, "jobs."+job+".steps").([]any)
	if !ok || len(raw) == 0 {
		t.Fatalf("job %s: no steps", job)
	}
	var out []map[string]any
	for _, s := range raw {
		m, ok := s.(map[string]any)
		if !ok {
			t.Fatalf("job %s: step %v is not a mapping", job, s)
		}
		out = append(out, m)
	}
	return out
}

func TestWorkflowUsesOIDCAndNoStoredSecret(t *testing.T) {
	wf, text := loadWorkflow(t)

	// Least privilege by default; only the deploy job may ask for an OIDC token.
	if get(wf, "permissions.contents") != "read" || get(wf, "permissions.id-token") != nil {
		t.Errorf("top-level permissions = %v, want contents: read only", wf["permissions"])
	}
	if get(wf, "jobs.deploy.permissions.id-token") != "write" {
		t.Errorf("deploy job permissions = %v, want id-token: write (OpenID Connect)", get(wf, "jobs.deploy.permissions"))
	}
	for _, job := range []string{"test", "package"} {
		if get(wf, "jobs."+job+".permissions.id-token") != nil {
			t.Errorf("job %s must not get an OIDC token", job)
		}
	}

	// No stored credential of any kind.
	if regexp.MustCompile(`secrets\.`).MatchString(text) {
		t.Errorf("the workflow reads a repository secret: it must need none")
	}
	for _, bad := range []string{"publish-profile", "publishProfile", "creds:", "client-secret", "AZURE_CREDENTIALS", "password"} {
		if strings.Contains(text, bad) {
			t.Errorf("the workflow mentions %q: deploy with OIDC only", bad)
		}
	}

	var login map[string]any
	for _, s := range steps(t, wf, "deploy") {
		if u, _ := s["uses"].(string); strings.HasPrefix(u, "azure/login@") {
			login = s
		}
	}
	if login == nil {
		t.Fatal("deploy job: no azure/login step")
	}
	for input, variable := range map[string]string{"client-id": "AZURE_CLIENT_ID", "tenant-id": "AZURE_TENANT_ID", "subscription-id": "AZURE_SUBSCRIPTION_ID"} {
		if got := get(login, "with."+input); got != "${{ vars."+variable+" }}" {
			t.Errorf("azure/login %s = %v, want ${{ vars.%s }} (a repository variable, not a secret)", input, got, variable)
		}
	}
	if w, _ := login["with"].(map[string]any); len(w) != 3 {
		t.Errorf("azure/login inputs = %v, want only client-id, tenant-id, subscription-id", w)
	}
}

func TestWorkflowRunsOnlyTheProjectsCommands(t *testing.T) {
	wf, _ := loadWorkflow(t)
	if get(wf, "jobs.package.needs") != "test" || get(wf, "jobs.deploy.needs") != "package" {
		t.Errorf("jobs must run test → package → deploy, got needs %v, %v", get(wf, "jobs.package.needs"), get(wf, "jobs.deploy.needs"))
	}
	allowedActions := regexp.MustCompile(`^(actions/checkout|actions/setup-go|actions/upload-artifact|actions/download-artifact|azure/login)@v\d+$`)
	var runs []string
	for _, job := range []string{"test", "package", "deploy"} {
		for _, s := range steps(t, wf, job) {
			if u, ok := s["uses"].(string); ok && !allowedActions.MatchString(u) {
				t.Errorf("job %s uses %s: not one of the expected actions", job, u)
			}
			if r, ok := s["run"].(string); ok {
				runs = append(runs, r)
			}
		}
	}
	all := strings.Join(runs, "\n")
	for _, want := range []string{
		"./scripts/test.sh",
		"./scripts/package.sh",
		"az deployment group create",
		"--template-file infra/azuredeploy.json",
		"createEventSubscriptions=false",
		"createEventSubscriptions=true",
		"az functionapp deployment source config-zip",
		"--src dist/kvrotator-functionapp.zip",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the workflow's commands lack %q", want)
		}
	}
	// Every command is a project script or one of the two az commands the README documents.
	for _, r := range runs {
		for _, line := range strings.Split(r, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "--") || strings.HasPrefix(line, "echo ") || line == ")" {
				continue
			}
			line = strings.TrimPrefix(line, "app=$(")
			ok := false
			for _, p := range []string{"./scripts/test.sh", "./scripts/package.sh", "az deployment group create", "az functionapp deployment source config-zip"} {
				ok = ok || strings.HasPrefix(line, p)
			}
			if !ok {
				t.Errorf("run line %q is not one of the project's commands", line)
			}
		}
	}
	for _, script := range []string{"../scripts/test.sh", "../scripts/package.sh"} {
		st, err := os.Stat(script)
		if err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s: missing or not executable (%v)", script, err)
		}
	}
	if _, err := os.Stat("../infra/azuredeploy.json"); err != nil {
		t.Error(err)
	}
}

// TestWorkflowActionlint runs actionlint (GitHub's workflow schema, expressions, shell) when it is
// installed: `go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12`.
func TestWorkflowActionlint(t *testing.T) {
	bin, err := exec.LookPath("actionlint")
	if err != nil {
		t.Skip("actionlint not installed; the YAML-subset checks above still ran")
	}
	out, err := exec.Command(bin, "-no-color", workflowFile).CombinedOutput()
	if err != nil {
		t.Errorf("actionlint: %v\n%s", err, out)
	}
}
