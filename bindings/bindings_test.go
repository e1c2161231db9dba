package bindings_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/providers"
)

var known = []string{"azure-keys", "entra-app", "postgres", "random", "sendgrid", "webhook"}

func TestSampleFileIsValid(t *testing.T) {
	data, err := os.ReadFile("../bindings.sample.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bindings.Parse(data, "bindings.sample.json", known); err != nil {
		t.Fatalf("the sample in the repository root must parse: %v", err)
	}
}

func TestParseNamesEveryProblem(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"not JSON", `{"bindings": [`, []string{"not a bindings document"}},
		{"unknown field", `{"bindings": [{"secrets": ["v/s"], "provider": "sendgrid", "allow": {"secret": ["a"]}, "alow": 1}]}`, []string{"unknown field"}},
		{"trailing data", `{"bindings": []} {}`, []string{"unexpected data"}},
		{"missing provider and secrets", `{"bindings": [{"allow": {"secret": ["a"]}}]}`, []string{"provider is missing", "secrets is empty"}},
		{"unknown provider", `{"bindings": [{"secrets": ["v/s"], "provider": "sendgird", "allow": {"secret": ["a"]}}]}`, []string{`provider "sendgird" is not one of`}},
		{"bad secrets pattern", `{"bindings": [{"secrets": ["just-a-name", "v/[x"], "provider": "*", "allow": {"secret": ["a"]}}]}`,
			[]string{`"just-a-name": want <vault>/<secret>`, `"v/[x"`}},
		{"unknown kind", `{"bindings": [{"secrets": ["v/s"], "provider": "*", "allow": {"host": ["a"]}}]}`, []string{"allow.host: not a reference kind"}},
		{"empty allow", `{"bindings": [{"name": "x", "secrets": ["v/s"], "provider": "*", "allow": {}}]}`, []string{`binding 1 ("x"): allow is empty`}},
		{"url without scheme", `{"bindings": [{"secrets": ["v/s"], "provider": "*", "allow": {"url": ["api.example.com"]}}]}`, []string{"want a base URL with its scheme"}},
		{"duplicate names", `{"bindings": [{"name": "a", "secrets": ["v/s"], "provider": "*", "allow": {"secret": ["x"]}},
			{"name": "A", "secrets": ["v/s"], "provider": "*", "allow": {"secret": ["x"]}}]}`, []string{"used twice"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bindings.Parse([]byte(tc.doc), "KVROTATOR_BINDINGS", known)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	p, err := bindings.Parse([]byte(`{"bindings": [
		{"name": "sg", "secrets": ["kv-prod/sendgrid-*"], "provider": "sendgrid", "allow": {"secret": ["sendgrid-admin"], "url": ["https://api.eu.sendgrid.com"]}},
		{"name": "team-a", "secrets": ["kv-prod/*"], "provider": "azure-keys",
		 "allow": {"resource": ["/subscriptions/s1/resourceGroups/team-a/providers/Microsoft.Storage/storageAccounts/*"]}},
		{"name": "db", "secrets": ["*/db-*"], "provider": "*", "allow": {"login": ["app_a"]}}]}`), "bindings.json", known)
	if err != nil {
		t.Fatal(err)
	}
	ref := func(k providers.RefKind, v string) providers.Reference {
		return providers.Reference{Kind: k, Tag: "some-tag", Value: v}
	}
	cases := []struct {
		name                    string
		vault, secret, provider string
		refs                    []providers.Reference
		ok                      bool
	}{
		{"bound admin secret", "kv-prod", "sendgrid-mail", "sendgrid", []providers.Reference{ref(providers.RefSecret, "sendgrid-admin")}, true},
		{"vault and names are case-insensitive", "KV-Prod", "SendGrid-Mail", "SendGrid", []providers.Reference{ref(providers.RefSecret, "SENDGRID-ADMIN")}, true},
		{"another secret", "kv-prod", "sendgrid-mail", "sendgrid", []providers.Reference{ref(providers.RefSecret, "db-admin")}, false},
		{"a secret outside the binding's pattern", "kv-prod", "mail", "sendgrid", []providers.Reference{ref(providers.RefSecret, "sendgrid-admin")}, false},
		{"another vault", "kv-dev", "sendgrid-mail", "sendgrid", []providers.Reference{ref(providers.RefSecret, "sendgrid-admin")}, false},
		{"another provider", "kv-prod", "sendgrid-mail", "webhook", []providers.Reference{ref(providers.RefSecret, "sendgrid-admin")}, false},
		{"attacker url", "kv-prod", "sendgrid-mail", "sendgrid", []providers.Reference{ref(providers.RefURL, "https://attacker.example")}, false},
		{"a builtin url where the binding restricts urls", "kv-prod", "sendgrid-mail", "sendgrid",
			[]providers.Reference{{Kind: providers.RefURL, Tag: "some-tag", Value: "https://api.sendgrid.com", Builtin: true}}, false},
		{"a builtin url where the binding does not restrict urls", "kv", "db-x", "sendgrid",
			[]providers.Reference{{Kind: providers.RefURL, Tag: "some-tag", Value: "https://api.sendgrid.com", Builtin: true}}, true},
		{"a builtin url with no binding at all", "kv-other", "x", "sendgrid",
			[]providers.Reference{{Kind: providers.RefURL, Tag: "some-tag", Value: "https://api.sendgrid.com", Builtin: true}}, true},
		{"every storage account of a group", "kv-prod", "x", "azure-keys",
			[]providers.Reference{ref(providers.RefResource, "/subscriptions/S1/resourcegroups/TEAM-A/providers/Microsoft.Storage/storageAccounts/acct1")}, true},
		{"another group's account", "kv-prod", "x", "azure-keys",
			[]providers.Reference{ref(providers.RefResource, "/subscriptions/s1/resourceGroups/team-b/providers/Microsoft.Storage/storageAccounts/acct1")}, false},
		{"a pattern does not cross /", "kv-prod", "x", "azure-keys",
			[]providers.Reference{ref(providers.RefResource, "/subscriptions/s1/resourceGroups/team-a/providers/Microsoft.Storage/storageAccounts/acct1/blobServices/default")}, false},
		{"logins are case-sensitive", "kv", "db-orders", "postgres", []providers.Reference{ref(providers.RefLogin, "APP_A")}, false},
		{"wildcard provider", "kv", "db-orders", "postgres", []providers.Reference{ref(providers.RefLogin, "app_a")}, true},
		{"no references", "kv", "anything", "random", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Check(tc.vault, tc.secret, tc.provider, tc.refs)
			if (err == nil) != tc.ok {
				t.Fatalf("Check = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				var ce *providers.ConfigError
				if !errors.As(err, &ce) || !providers.IsPermanent(err) || ce.Tag != "some-tag" || !strings.Contains(err.Error(), "not bound") ||
					!strings.Contains(err.Error(), "bindings.json") {
					t.Fatalf("want a permanent ConfigError naming the tag and the bindings file: %v", err)
				}
			}
		})
	}
}

func TestEveryUnboundReferenceIsNamed(t *testing.T) {
	var p *bindings.Policy
	err := p.Check("kv", "s", "webhook", []providers.Reference{
		{Kind: providers.RefURL, Tag: "webhook-url", Value: "https://a.example"},
		{Kind: providers.RefSecret, Tag: "webhook-signing-secret", Value: "k"}})
	if err == nil || !strings.Contains(err.Error(), "webhook-url") || !strings.Contains(err.Error(), "webhook-signing-secret") {
		t.Fatalf("%v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bindings.json")
	doc := `{"bindings": [{"secrets": ["v/s"], "provider": "random", "allow": {"secret": ["a"]}}]}`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, setting := range []string{doc, file} {
		p, err := bindings.Load(setting, "KVROTATOR_BINDINGS", known)
		if err != nil || len(p.Bindings) != 1 {
			t.Fatalf("Load(%q) = %v, %v", setting, p, err)
		}
	}
	if p, err := bindings.Load("", "KVROTATOR_BINDINGS", known); err != nil || len(p.Bindings) != 0 {
		t.Fatalf("empty setting: %v %v", p, err)
	}
	if _, err := bindings.Load(filepath.Join(dir, "missing.json"), "KVROTATOR_BINDINGS", known); err == nil ||
		!strings.Contains(err.Error(), "KVROTATOR_BINDINGS: reading the bindings file") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestOneBindingMustAllowEveryReference: an admin key bound with one service is never sent to a URL
// that only another binding allows, and a binding that restricts a kind restricts the provider's
// builtin default too.
func TestOneBindingMustAllowEveryReference(t *testing.T) {
	p, err := bindings.Parse([]byte(`{"bindings": [
		{"name": "prod", "secrets": ["kv/*"], "provider": "webhook", "allow": {"secret": ["prod-signing"], "url": ["https://prod.example"]}},
		{"name": "staging", "secrets": ["kv/*"], "provider": "*", "allow": {"url": ["https://staging-mock.example"]}},
		{"name": "eu", "secrets": ["kv/eu-*"], "provider": "sendgrid", "allow": {"url": ["https://api.eu.sendgrid.com"], "secret": ["sg-admin"]}},
		{"name": "db", "secrets": ["kv/db"], "provider": "postgres", "allow": {"server": ["DB.example.com:5432/orders"]}}]}`), "b.json", known)
	if err != nil {
		t.Fatal(err)
	}
	url := func(v string, builtin bool) providers.Reference {
		return providers.Reference{Kind: providers.RefURL, Tag: "u", Value: v, Builtin: builtin}
	}
	sec := providers.Reference{Kind: providers.RefSecret, Tag: "s", Value: "prod-signing"}
	cases := []struct {
		name, secret, provider string
		refs                   []providers.Reference
		ok                     bool
	}{
		{"both from one binding", "svc", "webhook", []providers.Reference{url("https://prod.example", false), sec}, true},
		{"secret from one, url from another", "svc", "webhook", []providers.Reference{url("https://staging-mock.example", false), sec}, false},
		{"url alone from the other", "svc", "webhook", []providers.Reference{url("https://staging-mock.example", false)}, true},
		{"builtin default where the binding restricts urls", "eu-mail", "sendgrid",
			[]providers.Reference{url("https://api.sendgrid.com", true), {Kind: providers.RefSecret, Tag: "s", Value: "sg-admin"}}, false},
		{"builtin default where a provider-wide binding restricts urls", "svc", "random", []providers.Reference{url("https://x.example", true)}, false},
		{"server host is case-insensitive", "db", "postgres", []providers.Reference{{Kind: providers.RefServer, Value: "db.EXAMPLE.com:5432/orders"}}, true},
		{"database name is case-sensitive", "db", "postgres", []providers.Reference{{Kind: providers.RefServer, Value: "db.example.com:5432/Orders"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Check("kv", tc.secret, tc.provider, tc.refs)
			if (err == nil) != tc.ok {
				t.Fatalf("Check = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestPlaceholdersTieEachSecretToItsOwn: one binding for many secrets where each may reach only what is
// named after it.
func TestPlaceholdersTieEachSecretToItsOwn(t *testing.T) {
	p, err := bindings.Parse([]byte(`{"bindings": [{"name": "own-account", "secrets": ["kv/*"], "provider": "azure-keys",
		"allow": {"resource": ["/subscriptions/s1/resourceGroups/team-a/providers/Microsoft.Storage/storageAccounts/{secret}"],
		          "secret": ["{vault}-{secret}-admin"]}}]}`), "b.json", known)
	if err != nil {
		t.Fatal(err)
	}
	res := func(name string) []providers.Reference {
		return []providers.Reference{{Kind: providers.RefResource, Tag: "ProviderAddress",
			Value: "/subscriptions/s1/resourceGroups/team-a/providers/Microsoft.Storage/storageAccounts/" + name}}
	}
	if err := p.Check("kv", "acct1", "azure-keys", res("acct1")); err != nil {
		t.Fatalf("own account: %v", err)
	}
	if err := p.Check("kv", "acct1", "azure-keys", res("acct2")); err == nil {
		t.Fatal("another secret's account was allowed")
	}
	if err := p.Check("kv", "x", "azure-keys", []providers.Reference{{Kind: providers.RefSecret, Tag: "t", Value: "kv-x-admin"}}); err != nil {
		t.Fatalf("{vault}-{secret}-admin: %v", err)
	}
}

func TestConsumers(t *testing.T) {
	const sub = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/team-a/providers"
	p, err := bindings.Parse([]byte(`{"bindings": [
		{"name": "mail", "secrets": ["kv/mail-*"], "provider": "sendgrid", "allow": {"secret": ["sendgrid-admin"]},
		 "consumers": [{"kind": "app-service", "resource": "`+sub+`/Microsoft.Web/sites/mailer"},
		               {"kind": "container-app", "resource": "`+sub+`/Microsoft.App/containerApps/{secret}-worker"}]},
		{"name": "everything in kv", "secrets": ["kv/*"], "provider": "*",
		 "consumers": [{"kind": "webhook", "url": "https://hooks.example.com/{vault}/{secret}", "signingSecret": "hook-key"},
		               {"kind": "app-service", "resource": "`+sub+`/Microsoft.Web/sites/mailer"}]}]}`), "test", known)
	if err != nil {
		t.Fatal(err)
	}
	got := p.Consumers("kv", "mail-key", "sendgrid")
	want := []string{
		"app-service " + sub + "/Microsoft.Web/sites/mailer",
		"container-app " + sub + "/Microsoft.App/containerApps/mail-key-worker",
		"webhook https://hooks.example.com/kv/mail-key",
	}
	if len(got) != len(want) {
		t.Fatalf("consumers %v, want %v (the app named twice once)", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("consumer %d = %q, want %q", i, got[i], want[i])
		}
	}
	if got[2].SigningSecret != "hook-key" {
		t.Errorf("signing secret: %+v", got[2])
	}
	if got := p.Consumers("kv", "db-password", "postgres"); len(got) != 2 || got[0].Kind != "webhook" || got[1].Kind != "app-service" {
		t.Errorf("another secret: %v", got)
	}
	if got := p.Consumers("other", "mail-key", "sendgrid"); len(got) != 0 {
		t.Errorf("another vault: %v", got)
	}
	var none *bindings.Policy
	if none.Consumers("kv", "s", "random") != nil {
		t.Error("nil policy")
	}

	for _, tc := range []struct{ consumer, want string }{
		{`{"kind": "app-service", "resource": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z"}`, "app-service consumer needs resource"},
		{`{"kind": "app-service", "resource": "` + sub + `/Microsoft.Web/sites/a", "url": "https://x.example.com"}`, "and nothing else"},
		{`{"kind": "container-app", "resource": "` + sub + `/Microsoft.Web/sites/a"}`, "container-app consumer needs resource"},
		{`{"kind": "webhook", "url": "http://hooks.example.com/x", "signingSecret": "k"}`, "http only for a loopback host"},
		{`{"kind": "webhook", "url": "https://user:pw@hooks.example.com/x", "signingSecret": "k"}`, "without credentials"},
		{`{"kind": "webhook", "url": "https://hooks.example.com/x"}`, "signingSecret"},
		{`{"kind": "webhook", "url": "https://hooks.example.com/x", "signingSecret": "k", "resource": "` + sub + `/Microsoft.Web/sites/a"}`, "not resource"},
		{`{"kind": "email"}`, `kind "email"`},
	} {
		_, err := bindings.Parse([]byte(`{"bindings": [{"name": "b", "secrets": ["kv/*"], "provider": "*", "consumers": [`+tc.consumer+`]}]}`), "test", known)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `binding 1 ("b"): consumers[0]`) {
			t.Errorf("%s: error %v, want it to say %q", tc.consumer, err, tc.want)
		}
	}
	if _, err := bindings.Parse([]byte(`{"bindings": [{"name": "b", "secrets": ["kv/*"], "provider": "*", "consumers": [{"kind": "webhook", "url": "http://127.0.0.1:8080/hook", "signingSecret": "k"}]}]}`), "test", known); err != nil {
		t.Errorf("a loopback http webhook: %v", err)
	}
}
