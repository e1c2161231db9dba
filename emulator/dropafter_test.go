package emulator_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
)

// versions lists a secret's version ids through the SDK.
func versions(t *testing.T, c *azsecrets.Client, name string) []string {
	t.Helper()
	var out []string
	pager := c.NewListSecretPropertiesVersionsPager(name, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			out = append(out, p.ID.Version())
		}
	}
	return out
}

// TestEmulatorFaultDropAfterApply: drop=after commits the write and loses the answer. azcore retries
// transport errors, so one SetSecret call writes twice: the vault holds two new versions, and the
// caller only learns about the second.
func TestEmulatorFaultDropAfterApply(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t, srv, "myvault")
	if _, err := c.SetSecret(ctx(t), "db-password", azsecrets.SetSecretParameters{Value: to("v0")}, nil); err != nil {
		t.Fatal(err)
	}
	before := versions(t, c, "db-password")

	rule, err := emulator.ParseFaultRule("op=SetSecret,secret=db-password,drop=after,count=1")
	if err != nil {
		t.Fatal(err)
	}
	if !rule.DropAfter || rule.Drop {
		t.Fatalf("parsed %+v", rule)
	}
	if err := srv.AddFault(rule); err != nil {
		t.Fatal(err)
	}
	resp, err := c.SetSecret(ctx(t), "db-password", azsecrets.SetSecretParameters{Value: to("v1")}, nil)
	if err != nil {
		t.Fatalf("SetSecret with one dropped answer (the SDK retries): %v", err)
	}
	after := versions(t, c, "db-password")
	if len(after) != len(before)+2 {
		t.Fatalf("versions before %v, after %v: want two new versions (the dropped write and the retry)", before, after)
	}
	got, err := c.GetSecret(ctx(t), "db-password", "", nil)
	if err != nil || *got.Value != "v1" || got.ID.Version() != resp.ID.Version() {
		t.Fatalf("GET latest: %v %v, want the retried write %s", got.ID, err, resp.ID.Version())
	}
	if len(srv.Faults()) != 0 {
		t.Fatalf("rule not used up: %+v", srv.Faults())
	}

	// Without retries the caller sees a transport error, yet the write is there.
	opts := clientOptions(srv)
	opts.Retry = policy.RetryOptions{MaxRetries: -1}
	noRetry, _ := azsecrets.NewClient(srv.VaultURL("myvault"), managedIdentity(t, srv, ""), opts)
	if _, err := noRetry.GetSecret(ctx(t), "db-password", "", nil); err != nil {
		t.Fatal(err) // warm up the token
	}
	// Over the admin API, as other languages script it.
	res, err := srv.HTTPClient().Post(srv.URL()+"/_emulator/faults", "application/json",
		strings.NewReader(`{"spec":"op=SetSecret,drop=after"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var listed []struct {
		Rule struct {
			DropAfter bool `json:"dropAfter"`
		} `json:"rule"`
	}
	if res.StatusCode != 200 || json.Unmarshal(body, &listed) != nil || len(listed) != 1 || !listed[0].Rule.DropAfter {
		t.Fatalf("admin fault: %d %s", res.StatusCode, body)
	}
	_, err = noRetry.SetSecret(ctx(t), "db-password", azsecrets.SetSecretParameters{Value: to("v2")}, nil)
	var re *azcore.ResponseError
	if err == nil || asResponseError(err, &re) {
		t.Fatalf("dropped answer must be a transport error, got %v", err)
	}
	got, err = c.GetSecret(ctx(t), "db-password", "", nil)
	if err != nil || *got.Value != "v2" {
		t.Fatalf("the write whose answer was dropped is not applied: %v", err)
	}
	if n := len(versions(t, c, "db-password")); n != len(after)+1 {
		t.Fatalf("%d versions, want %d", n, len(after)+1)
	}

	// drop=true still drops before applying: nothing changes.
	_ = srv.AddFault(emulator.FaultRule{Operation: "SetSecret", Drop: true})
	if _, err := noRetry.SetSecret(ctx(t), "db-password", azsecrets.SetSecretParameters{Value: to("v3")}, nil); err == nil {
		t.Fatal("drop=true answered")
	}
	if got, _ := c.GetSecret(ctx(t), "db-password", "", nil); *got.Value != "v2" {
		t.Fatal("drop=true applied the write")
	}
}
