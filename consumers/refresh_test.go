package consumers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/kvrotator/kvrotator/consumers"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/providers/webhook"
	"github.com/kvrotator/kvrotator/rotation"
)

const (
	sub       = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/team-a/providers"
	armToken  = "arm-test-token"
	signing   = "consumer-signing-key-0123456789"
	pollsLeft = 2
)

// fakeCredential hands out a fixed token for Resource Manager's audience.
type fakeCredential struct{}

func (fakeCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(o.Scopes) != 1 || o.Scopes[0] != "https://management.azure.com//.default" && o.Scopes[0] != "https://management.azure.com/.default" {
		return azcore.AccessToken{}, fmt.Errorf("unexpected scopes %v", o.Scopes)
	}
	return azcore.AccessToken{Token: armToken, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// fakeARM answers as Resource Manager does for the App Service Key Vault reference refresh (200, or 202
// with Azure-AsyncOperation polling for "slow" apps) and Container Apps' revision list (paged) and
// restart, with the ARM error body for missing apps and scripted failures.
type fakeARM struct {
	srv *httptest.Server

	mu         sync.Mutex
	refreshed  map[string]int
	restarted  []string
	polls      int
	failStatus map[string]int // app name → status to answer
	opStatus   string         // the final status of long-running operations
}

func newFakeARM(t *testing.T) *fakeARM {
	f := &fakeARM{refreshed: map[string]int{}, failStatus: map[string]int{}, opStatus: "Succeeded"}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func armError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (f *fakeARM) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+armToken {
		armError(w, 401, "AuthenticationFailed", "no token")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, api := r.URL.Path, r.URL.Query().Get("api-version")
	name := func(after string) string {
		rest := p[strings.Index(p, after)+len(after):]
		n, _, _ := strings.Cut(rest, "/")
		return n
	}
	switch {
	case strings.Contains(p, "/operationresults/"):
		f.polls++
		if f.polls < pollsLeft {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"status":"InProgress"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"status":%q}`, f.opStatus)
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/config/configreferences/appsettings/refresh"):
		if api != "2022-03-01" {
			armError(w, 400, "InvalidApiVersionParameter", "api-version")
			return
		}
		app := name("/Microsoft.Web/sites/")
		if st := f.failStatus[app]; st != 0 {
			armError(w, st, http.StatusText(st), "scripted")
			return
		}
		if app == "missing" {
			armError(w, 404, "ResourceNotFound", "The Resource 'Microsoft.Web/sites/missing' under resource group 'team-a' was not found.")
			return
		}
		f.refreshed[strings.TrimSuffix(p, "/config/configreferences/appsettings/refresh")]++
		if app == "slow" {
			op := f.srv.URL + sub + "/Microsoft.Web/locations/westeurope/operationresults/op-1?api-version=2022-03-01"
			w.Header().Set("Azure-AsyncOperation", op)
			w.Header().Set("Location", op)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodGet && strings.HasSuffix(p, "/revisions"):
		if api != "2025-01-01" {
			armError(w, 400, "InvalidApiVersionParameter", "api-version")
			return
		}
		app := name("/Microsoft.App/containerApps/")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case app == "idle":
			_, _ = io.WriteString(w, `{"value":[{"name":"idle--r1","properties":{"active":false}}]}`)
		case r.URL.Query().Get("page") == "2":
			_, _ = io.WriteString(w, `{"value":[{"name":"`+app+`--r3","properties":{"active":true}}]}`)
		default:
			_, _ = fmt.Fprintf(w, `{"value":[{"name":"%s--r1","properties":{"active":false}},{"name":"%s--r2","properties":{"active":true}}],"nextLink":%q}`,
				app, app, f.srv.URL+p+"?api-version=2025-01-01&page=2")
		}
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/restart"):
		f.restarted = append(f.restarted, name("/revisions/"))
		w.WriteHeader(http.StatusOK)
	default:
		armError(w, 404, "NotFound", r.Method+" "+p)
	}
}

func (f *fakeARM) refresher() *consumers.Refresher {
	return consumers.NewRefresher(consumers.Options{
		Azure: &registry.Azure{Credential: fakeCredential{}, Transport: f.srv.Client(), Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: "https://login.example.com/",
			Services:                     map[cloud.ServiceName]cloud.ServiceConfiguration{cloud.ResourceManager: {Audience: "https://management.azure.com", Endpoint: f.srv.URL}}}},
		PollFrequency: 10 * time.Millisecond,
		Retry:         &policy.RetryOptions{MaxRetries: -1},
	})
}

func appService(name string) rotation.Consumer {
	return rotation.Consumer{Kind: rotation.ConsumerAppService, Resource: sub + "/Microsoft.Web/sites/" + name}
}

func TestAppServiceRefresh(t *testing.T) {
	f := newFakeARM(t)
	r := f.refresher()
	ctx := context.Background()
	if err := r.Refresh(ctx, appService("orders"), rotation.Refresh{}); err != nil {
		t.Fatal(err)
	}
	slot := rotation.Consumer{Kind: rotation.ConsumerAppService, Resource: sub + "/Microsoft.Web/sites/orders/slots/staging"}
	if err := r.Refresh(ctx, slot, rotation.Refresh{}); err != nil {
		t.Fatal(err)
	}
	// A long-running refresh: polled until it succeeds.
	if err := r.Refresh(ctx, appService("slow"), rotation.Refresh{}); err != nil {
		t.Fatal(err)
	}
	if f.refreshed[sub+"/Microsoft.Web/sites/orders"] != 1 || f.refreshed[sub+"/Microsoft.Web/sites/orders/slots/staging"] != 1 ||
		f.refreshed[sub+"/Microsoft.Web/sites/slow"] != 1 || f.polls < pollsLeft {
		t.Fatalf("refreshed %v, %d polls", f.refreshed, f.polls)
	}
	f.polls, f.opStatus = 0, "Failed"
	if err := r.Refresh(ctx, appService("slow"), rotation.Refresh{}); err == nil {
		t.Fatal("a failed long-running operation was reported as a refresh")
	}

	// Missing app and missing role: permanent; throttled or unavailable: transient.
	f.failStatus["forbidden"], f.failStatus["busy"] = 403, 503
	for app, permanent := range map[string]bool{"missing": true, "forbidden": true, "busy": false} {
		err := r.Refresh(ctx, appService(app), rotation.Refresh{})
		if err == nil || providers.IsPermanent(err) != permanent {
			t.Errorf("%s: %v (permanent %v, want %v)", app, err, providers.IsPermanent(err), permanent)
		}
	}
}

func TestContainerAppRestartsActiveRevisions(t *testing.T) {
	f := newFakeARM(t)
	r := f.refresher()
	c := rotation.Consumer{Kind: rotation.ConsumerContainerApp, Resource: sub + "/Microsoft.App/containerApps/worker"}
	if err := r.Refresh(context.Background(), c, rotation.Refresh{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.restarted, ","); got != "worker--r2,worker--r3" {
		t.Fatalf("restarted %q, want the active revisions of both pages", got)
	}
	idle := rotation.Consumer{Kind: rotation.ConsumerContainerApp, Resource: sub + "/Microsoft.App/containerApps/idle"}
	if err := r.Refresh(context.Background(), idle, rotation.Refresh{}); err == nil || !providers.IsPermanent(err) || !strings.Contains(err.Error(), "no active revision") {
		t.Fatalf("no active revision: %v", err)
	}
}

func TestNoAzureCredential(t *testing.T) {
	r := consumers.NewRefresher(consumers.Options{})
	if err := r.Refresh(context.Background(), appService("orders"), rotation.Refresh{}); !errors.Is(err, registry.ErrNoAzure) || !providers.IsPermanent(err) {
		t.Fatalf("%v", err)
	}
}

// keyReader hands out the signing key, and nothing else.
type keyReader map[string]string

func (k keyReader) SecretValue(_ context.Context, name string) (providers.Value, error) {
	if v, ok := k[name]; ok {
		return providers.NewValue(v), nil
	}
	return providers.Value{}, providers.Permanent(errors.New("not readable"))
}

func TestWebhookConsumerGetsASignedNotification(t *testing.T) {
	var (
		mu     sync.Mutex
		got    []consumers.Notification
		status = http.StatusNoContent
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get(webhook.HeaderTimestamp)
		if r.Header.Get(webhook.HeaderSignature) != webhook.Sign([]byte(signing), ts, body) || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		var n consumers.Notification
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(w, "bad body", 400)
			return
		}
		mu.Lock()
		got = append(got, n)
		st := status
		mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(srv.Close)
	r := consumers.NewRefresher(consumers.Options{})
	at := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	info := rotation.Refresh{Vault: "kv", Secret: "mail-key", Version: "v2", Previous: "v1", At: at, Secrets: keyReader{"hook-key": signing}}
	c := rotation.Consumer{Kind: rotation.ConsumerWebhook, URL: srv.URL + "/hook", SigningSecret: "hook-key"}
	if err := r.Refresh(context.Background(), c, info); err != nil {
		t.Fatal(err)
	}
	want := consumers.Notification{Type: consumers.EventRotated, Vault: "kv", Secret: "mail-key", Version: "v2", PreviousVersion: "v1", RotatedAt: at}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("notification %+v, want %+v", got, want)
	}

	status = http.StatusServiceUnavailable
	if err := r.Refresh(context.Background(), c, info); err == nil || providers.IsPermanent(err) {
		t.Fatalf("503: %v, want transient", err)
	}
	status = http.StatusBadRequest
	if err := r.Refresh(context.Background(), c, info); err == nil || !providers.IsPermanent(err) {
		t.Fatalf("400: %v, want permanent", err)
	}
	moved := c
	moved.URL = srv.URL + "/moved"
	if err := r.Refresh(context.Background(), moved, info); err == nil || !strings.Contains(err.Error(), "302") {
		t.Fatalf("a redirect was followed or accepted: %v", err)
	}
	wrongKey := info
	wrongKey.Secrets = keyReader{}
	if err := r.Refresh(context.Background(), c, wrongKey); err == nil || strings.Contains(err.Error(), signing) {
		t.Fatalf("no key: %v", err)
	}
}
