package azurekeys_test

import (
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/azurekeys"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// The registry builds the provider with the application's Azure environment; without one it is left
// out with registry.ErrNoAzure. It is a two-slot provider with nothing to revoke.
func TestRegistered(t *testing.T) {
	f := newFake(t)
	az := f.azure()
	set, problems := registry.Build(registry.Env{Azure: &az})
	if err := problems[azurekeys.Name]; err != nil {
		t.Fatalf("registry.Build: %v", err)
	}
	for _, name := range []string{"azure-keys", "Azure-Keys", " AZURE-KEYS "} {
		p, ok := set.Lookup(name)
		if !ok {
			t.Fatalf("Lookup(%q) found nothing", name)
		}
		if _, ok := p.(*azurekeys.Provider); !ok {
			t.Fatalf("Lookup(%q) = %T, want *azurekeys.Provider", name, p)
		}
	}
	p, _ := set.Lookup(azurekeys.Name)
	if s := p.Shape(); s != providers.ShapeTwoSlot {
		t.Errorf("Shape() = %q, want %q", s, providers.ShapeTwoSlot)
	}
	if _, ok := p.(providers.Revoker); ok {
		t.Error("azure-keys is a providers.Revoker: a two-slot key has nothing to revoke")
	}
	// The built provider calls the Azure it was built with.
	req := request(redisID, "Primary", "", nil)
	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if c.CredentialID != "Secondary" || c.Value.Reveal() != f.key(redisID, "Secondary") {
		t.Fatalf("Create through the registered provider: %s", c.CredentialID)
	}
	if err := p.Verify(t.Context(), req, c); err != nil {
		t.Fatal(err)
	}

	_, problems = registry.Build(registry.Env{})
	if err := problems[azurekeys.Name]; !errors.Is(err, registry.ErrNoAzure) {
		t.Fatalf("registry.Build without Azure: %v, want registry.ErrNoAzure", err)
	}
}

// A provider built without WithAzure (or with an empty one) fails every call with registry.ErrNoAzure,
// a permanent error, before anything is contacted.
func TestWithoutAzure(t *testing.T) {
	f := newFake(t)
	req := request(storageID, "key1", f.key(storageID, "key1"), nil)
	for name, p := range map[string]*azurekeys.Provider{
		"no WithAzure":             azurekeys.New(azurekeys.WithEndpoints(testEndpoints)),
		"WithAzure, no credential": azurekeys.New(azurekeys.WithAzure(registry.Azure{Transport: f.srv.Client()}), azurekeys.WithEndpoints(testEndpoints)),
	} {
		_, createErr := p.Create(t.Context(), req)
		verifyErr := p.Verify(t.Context(), req, providers.Credential{Value: providers.NewValue(f.key(storageID, "key2")), CredentialID: "key2"})
		for _, err := range []error{createErr, verifyErr} {
			if !providers.IsPermanent(err) || !errors.Is(err, registry.ErrNoAzure) {
				t.Fatalf("%s: %v, want a permanent registry.ErrNoAzure", name, err)
			}
		}
	}
	if n := f.requestCount(""); n != 0 {
		t.Fatalf("%d requests without an Azure environment", n)
	}
}

// request is what the engine passes for a secret with these tags and current value.
func request(id, credentialID, current string, extra map[string]string) providers.Request {
	p := providers.Params{"rotation-provider": azurekeys.Name, azurekeys.TagAddress: id, azurekeys.TagCredentialID: credentialID}
	for k, v := range extra {
		p[k] = v
	}
	return providers.Request{Vault: "v", Secret: "s", Version: "ver1", Current: providers.NewValue(current),
		CredentialID: credentialID, Address: id, Params: p, IdempotencyKey: "kvr-0123456789abcdef", Now: time.Now()}
}

// Every supported type rotates through the same generic client: the inactive slot is regenerated (the
// server saw exactly that slot), the new value is that slot's new key or its connection string, the
// active slot is untouched, and Verify accepts the new credential.
func TestRotateEachType(t *testing.T) {
	f := newFake(t)
	p := f.provider()
	key := func(k string) string { return k }
	cases := []struct {
		name     string
		id       string
		cred     string // CredentialId of the current version
		active   string // the fake's name for that slot
		target   string // the fake's name for the slot to regenerate
		wantCred string // CredentialID of the new credential
		format   string
		want     func(k string) string // the value expected for the slot's new key
	}{
		{name: "storage key, data-plane verify", id: storageID, cred: "key1", active: "key1", target: "key2", wantCred: "key2", want: key},
		{name: "storage connection string", id: storageID, cred: "key2", active: "key2", target: "key1", wantCred: "key1", format: azurekeys.FormatConnectionString,
			want: func(k string) string {
				return "DefaultEndpointsProtocol=https;AccountName=appdata;AccountKey=" + k + ";EndpointSuffix=example.com"
			}},
		{name: "cosmos primary to secondary (202 + Azure-AsyncOperation)", id: cosmosID, cred: "primary", active: "primary", target: "secondary", wantCred: "secondary", want: key},
		{name: "cosmos read-only pair, connection string", id: cosmosID, cred: "secondaryReadonly", active: "secondaryReadonly", target: "primaryReadonly",
			wantCred: "primaryReadonly", format: azurekeys.FormatConnectionString,
			want: func(k string) string {
				return "AccountEndpoint=https://appdb.documents.example.com:443/;AccountKey=" + k + ";"
			}},
		{name: "cognitive services", id: cognitiveID, cred: "Key1", active: "Key1", target: "Key2", wantCred: "Key2", want: key},
		{name: "service bus namespace rule, connection string", id: sbRuleID, cred: "PrimaryKey", active: "PrimaryKey", target: "SecondaryKey",
			wantCred: "SecondaryKey", format: azurekeys.FormatConnectionString,
			want: func(k string) string {
				return "Endpoint=sb://appbus.servicebus.windows.net/;SharedAccessKeyName=sender;SharedAccessKey=" + k
			}},
		{name: "service bus queue rule, CredentialId spelled secondary", id: sbQueueID, cred: "secondary", active: "SecondaryKey", target: "PrimaryKey", wantCred: "PrimaryKey", want: key},
		{name: "event hubs rule, connection string", id: ehRuleID, cred: "SecondaryKey", active: "SecondaryKey", target: "PrimaryKey",
			wantCred: "PrimaryKey", format: azurekeys.FormatConnectionString,
			want: func(k string) string {
				return "Endpoint=sb://apphub.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=" + k + ";EntityPath=clicks"
			}},
		{name: "event grid topic (202 + Location)", id: egTopicID, cred: "key2", active: "key2", target: "key1", wantCred: "key1", want: key},
		{name: "redis key", id: redisID, cred: "Primary", active: "Primary", target: "Secondary", wantCred: "Secondary", want: key},
		{name: "redis connection string", id: redisID, cred: "Secondary", active: "Secondary", target: "Primary", wantCred: "Primary",
			format: azurekeys.FormatConnectionString,
			want: func(k string) string {
				return "appcache.redis.example.com:6380,password=" + k + ",ssl=True,abortConnect=False"
			}},
		{name: "ai search admin key, data-plane verify", id: searchID, cred: "secondary", active: "secondary", target: "primary", wantCred: "primary", want: key},
		{name: "app configuration, connection string", id: appConfigID, cred: "Primary", active: "Primary", target: "Secondary", wantCred: "Secondary",
			format: azurekeys.FormatConnectionString,
			want: func(k string) string {
				return "Endpoint=https://appcfg.azconfig.io;Id=" + f.resource(appConfigID).ids["Secondary"] + ";Secret=" + k
			}},
		{name: "app configuration read-only pair", id: appConfigID, cred: "primary-read-only", active: "Primary Read Only", target: "Secondary Read Only",
			wantCred: "Secondary Read Only", want: key},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.regenerated(tc.id)
			activeBefore := f.key(tc.id, tc.active)
			extra := map[string]string{}
			if tc.format != "" {
				extra[azurekeys.TagFormat] = tc.format
			}
			req := request(tc.id, tc.cred, tc.want(activeBefore), extra)
			if err := p.Validate(req.Params); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			c, err := p.Create(t.Context(), req)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if got := f.regenerated(tc.id)[len(before):]; !slices.Equal(got, []string{tc.target}) {
				t.Fatalf("the server regenerated %v, want exactly [%s]", got, tc.target)
			}
			if c.CredentialID != tc.wantCred {
				t.Errorf("CredentialID = %q, want %q", c.CredentialID, tc.wantCred)
			}
			if want := tc.want(f.key(tc.id, tc.target)); c.Value.Reveal() != want {
				t.Errorf("the value is not the new %s key in the expected form", tc.target)
			}
			if f.key(tc.id, tc.active) != activeBefore {
				t.Fatalf("the active slot %s changed", tc.active)
			}
			if err := p.Verify(t.Context(), req, c); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

// The token is requested for the audience of the cloud configuration, and every call goes to the
// endpoint it names.
func TestCloudConfigurationSetsEndpointAndAudience(t *testing.T) {
	f := newFake(t)
	if _, err := f.provider().Create(t.Context(), request(storageID, "key1", "", nil)); err != nil {
		t.Fatal(err)
	}
	scopes := f.cred.Scopes()
	if len(scopes) == 0 {
		t.Fatal("no token was requested")
	}
	for _, s := range scopes {
		if !slices.Equal(s, []string{testAudience + "/.default"}) {
			t.Fatalf("token scopes %v, want [%s/.default]", s, testAudience)
		}
	}
	if n := f.requestCount("/listkeys"); n != 2 {
		t.Errorf("%d listKeys calls, want 2 (before and after regenerating)", n)
	}
}

// The provider never regenerates the slot CredentialId names, whichever it is and however often it runs
// (a retry after a crash regenerates the inactive slot again, which nothing uses yet).
func TestNeverRegeneratesTheActiveSlot(t *testing.T) {
	f := newFake(t)
	p := f.provider()
	for _, active := range []string{"key1", "key2", "key1"} {
		inactive := map[string]string{"key1": "key2", "key2": "key1"}[active]
		req := request(storageID, active, f.key(storageID, active), nil)
		for range 2 {
			before := len(f.regenerated(storageID))
			keep := f.key(storageID, active)
			c, err := p.Create(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.regenerated(storageID)[before:]; !slices.Equal(got, []string{inactive}) || c.CredentialID != inactive {
				t.Fatalf("CredentialId=%s: regenerated %v, returned %s; want only %s", active, got, c.CredentialID, inactive)
			}
			if f.key(storageID, active) != keep {
				t.Fatalf("the active slot %s changed", active)
			}
		}
	}
}

// A CredentialId that does not match the value (the value is the other slot's key) stops the rotation
// before anything is regenerated: regenerating "the inactive slot" would cut off the key in use.
func TestRefusesWhenCredentialIdDoesNotMatchTheValue(t *testing.T) {
	f := newFake(t)
	for _, form := range []string{azurekeys.FormatKey, azurekeys.FormatConnectionString} {
		current := f.key(storageID, "key2")
		if form == azurekeys.FormatConnectionString {
			current = "DefaultEndpointsProtocol=https;AccountName=appdata;AccountKey=" + current + ";EndpointSuffix=example.com"
		}
		_, err := f.provider().Create(t.Context(), request(storageID, "key1", current, map[string]string{azurekeys.TagFormat: form}))
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "refusing to regenerate the key in use") || !strings.Contains(err.Error(), "CredentialId=key2") {
			t.Fatalf("%s: err = %v, want a permanent refusal naming the fix", form, err)
		}
		if got := f.regenerated(storageID); len(got) != 0 {
			t.Fatalf("%s: regenerated %v", form, got)
		}
	}
}

const authorizationFailed = `{"error":{"code":"AuthorizationFailed","message":"The client 'b8e1a1f5-6c7a-4a3e-9d7c-1f2e3d4c5b6a' with object id ` +
	`'b8e1a1f5-6c7a-4a3e-9d7c-1f2e3d4c5b6a' does not have authorization to perform action 'Microsoft.Storage/storageAccounts/regenerateKey/action' ` +
	`over scope '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/app/providers/Microsoft.Storage/storageAccounts/appdata' ` +
	`or the scope is invalid. If access was recently granted, please refresh your credentials."}}`

// Resource Manager's answers are classified once: what no retry can fix is permanent (and says what to
// do), the rest transient with azcore's retries already spent.
func TestARMErrors(t *testing.T) {
	cases := []struct {
		name      string
		match     string
		times     int
		status    int
		header    http.Header
		body      string
		permanent bool
		contains  []string
		retry     time.Duration
	}{
		{name: "403 AuthorizationFailed names the action and a role", match: "/regeneratekey", times: -1, status: 403, body: authorizationFailed,
			permanent: true, contains: []string{"forbidden", "Microsoft.Storage/storageAccounts/regenerateKey/action", "Storage Account Key Operator Service Role", "AuthorizationFailed"}},
		{name: "403 on listKeys names listKeys", match: "/listkeys", times: -1, status: 403,
			body:      `{"error":{"code":"AuthorizationFailed","message":"does not have authorization to perform action 'Microsoft.Storage/storageAccounts/listKeys/action'"}}`,
			permanent: true, contains: []string{"Microsoft.Storage/storageAccounts/listKeys/action"}},
		{name: "404 ResourceNotFound", match: "/listkeys", times: -1, status: 404,
			body:      `{"error":{"code":"ResourceNotFound","message":"The Resource 'Microsoft.Storage/storageAccounts/appdata' under resource group 'app' was not found."}}`,
			permanent: true, contains: []string{"not found", "ProviderAddress"}},
		{name: "400 bad request", match: "/regeneratekey", times: -1, status: 400,
			body:      `{"error":{"code":"InvalidRequestContent","message":"The request content was invalid."}}`,
			permanent: true, contains: []string{"InvalidRequestContent"}},
		{name: "409 ScopeLocked is permanent", match: "/listkeys", times: -1, status: 409,
			body:      `{"error":{"code":"ScopeLocked","message":"The scope '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/app' cannot perform write operation because following scope(s) are locked: '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/app'."}}`,
			permanent: true, contains: []string{"read-only lock"}},
		{name: "409 Conflict: another operation in progress", match: "/regeneratekey", times: 1, status: 409,
			body:     `{"error":{"code":"Conflict","message":"Operation regenerateKey on storage account appdata failed: another operation is in progress."}}`,
			contains: []string{"HTTP 409", "in progress"}},
		{name: "429 beyond azcore's patience keeps Retry-After", match: "/regeneratekey", times: -1, status: 429, header: http.Header{"Retry-After": {"120"}},
			body:     `{"error":{"code":"TooManyRequests","message":"The request is being throttled."}}`,
			contains: []string{"HTTP 429", "throttled"}, retry: 120 * time.Second},
		{name: "503 after azcore's retries", match: "/regeneratekey", times: -1, status: 503, header: http.Header{"Retry-After": {"1"}},
			body:     `{"error":{"code":"ServiceUnavailable","message":"The service is unavailable."}}`,
			contains: []string{"HTTP 503"}, retry: time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.fail(tc.match, tc.times, tc.status, tc.header, tc.body)
			_, err := f.provider().Create(t.Context(), request(storageID, "key1", f.key(storageID, "key1"), nil))
			if err == nil {
				t.Fatal("Create succeeded")
			}
			t.Log(err)
			if providers.IsPermanent(err) != tc.permanent {
				t.Fatalf("permanent = %v, want %v: %v", providers.IsPermanent(err), tc.permanent, err)
			}
			var e *azurekeys.Error
			if !errors.As(err, &e) || e.Status != tc.status {
				t.Fatalf("err = %#v, want an *azurekeys.Error with status %d", err, tc.status)
			}
			for _, s := range tc.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not mention %q", err, s)
				}
			}
			if e.RetryAfter() != tc.retry {
				t.Errorf("RetryAfter() = %v, want %v", e.RetryAfter(), tc.retry)
			}
			if tc.match == "/regeneratekey" && tc.status != 409 && len(f.regenerated(storageID)) != 0 {
				t.Errorf("regenerated %v despite the failure", f.regenerated(storageID))
			}
			assertNoKeys(t, f, err.Error())
		})
	}
}

// The same classification holds for every type the generic client serves: Storage (synchronous),
// Cosmos DB (long-running), Service Bus rules and Redis.
func TestARMErrorsEachType(t *testing.T) {
	for _, r := range []struct{ id, active, regenerate, role string }{
		{storageID, "key1", "Microsoft.Storage/storageAccounts/regenerateKey/action", "Storage Account Key Operator Service Role"},
		{cosmosID, "primary", "Microsoft.DocumentDB/databaseAccounts/regenerateKey/action", "DocumentDB Account Contributor"},
		{sbQueueID, "PrimaryKey", "Microsoft.ServiceBus/namespaces/queues/authorizationRules/regenerateKeys/action", "Contributor"},
		{redisID, "Primary", "Microsoft.Cache/redis/regenerateKey/action", "Redis Cache Contributor"},
	} {
		for _, tc := range []struct {
			status    int
			header    http.Header
			code      string
			permanent bool
			retry     time.Duration
		}{
			{403, nil, "AuthorizationFailed", true, 0},
			{409, nil, "Conflict", false, 0},
			{429, http.Header{"Retry-After": {"30"}}, "TooManyRequests", false, 30 * time.Second},
			{503, nil, "ServiceUnavailable", false, 0},
		} {
			t.Run(familyOf(r.id)+" "+tc.code, func(t *testing.T) {
				f := newFake(t)
				f.fail("/regeneratekey", -1, tc.status, tc.header, `{"error":{"code":"`+tc.code+`","message":"Azure said no."}}`)
				_, err := f.provider().Create(t.Context(), request(r.id, r.active, "", nil))
				var e *azurekeys.Error
				if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code || providers.IsPermanent(err) != tc.permanent || e.RetryAfter() != tc.retry {
					t.Fatalf("err = %v", err)
				}
				if tc.status == 403 && (!strings.Contains(err.Error(), r.regenerate) || !strings.Contains(err.Error(), r.role)) {
					t.Fatalf("the 403 does not name %s and %s: %v", r.regenerate, r.role, err)
				}
				if got := f.regenerated(r.id); len(got) != 0 {
					t.Fatalf("regenerated %v", got)
				}
			})
		}
	}
}

// azcore retries 429 and 5xx itself, honouring Retry-After: one throttled answer costs a second, not a
// failed rotation.
func TestAzcoreRetriesThrottlingAndServerErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		header http.Header
		min    time.Duration
	}{
		{429, http.Header{"Retry-After": {"1"}}, time.Second},
		{500, nil, 0},
		{503, nil, 0},
	} {
		f := newFake(t)
		f.fail("/regeneratekey", 1, tc.status, tc.header, `{"error":{"code":"Busy","message":"try later"}}`)
		start := time.Now()
		c, err := f.provider().Create(t.Context(), request(storageID, "key1", "", nil))
		if err != nil {
			t.Fatalf("%d: Create: %v", tc.status, err)
		}
		if took := time.Since(start); took < tc.min {
			t.Errorf("%d: took %v, want at least the Retry-After of %v", tc.status, took, tc.min)
		}
		if n := f.requestCount("/regeneratekey"); n != 2 || c.Value.Reveal() != f.key(storageID, "key2") {
			t.Errorf("%d: %d regenerate requests, want 2 (the failure, then the retry)", tc.status, n)
		}
	}
}

// Long-running regenerations: the poller follows the operation to its end; a failed operation is
// reported (transient: it usually failed because something else was going on).
func TestLongRunningRegeneration(t *testing.T) {
	f := newFake(t)
	f.pollsLeft = 3
	c, err := f.provider().Create(t.Context(), request(cosmosID, "secondary", "", nil))
	if err != nil || c.CredentialID != "primary" || c.Value.Reveal() != f.key(cosmosID, "primary") {
		t.Fatalf("Create = %v, %v", c.CredentialID, err)
	}
	if n := f.requestCount("/operationresults/status/"); n != 4 {
		t.Errorf("%d status polls, want 4 (3 in progress, then succeeded)", n)
	}

	f.fail("/operationresults/status/", -1, 200, nil,
		`{"status":"Failed","error":{"code":"PreconditionFailed","message":"There is already an operation in progress which requires exclusive lock on this service."}}`)
	_, err = f.provider().Create(t.Context(), request(cosmosID, "primary", "", nil))
	var e *azurekeys.Error
	if err == nil || providers.IsPermanent(err) || !errors.As(err, &e) || e.Code != "PreconditionFailed" {
		t.Fatalf("a failed operation: %v", err)
	}

	f.clearFaults()
	f.fail("/regeneratekey", 1, 412, nil, `{"code":"PreconditionFailed","message":"There is already an operation in progress which requires exclusive lock on this service."}`)
	if _, err := f.provider().Create(t.Context(), request(cosmosID, "primary", "", nil)); err == nil || providers.IsPermanent(err) {
		t.Fatalf("Cosmos DB's 412 (operation in progress) must be transient: %v", err)
	}
}

// Nothing answering at all is transient.
func TestIssuerDown(t *testing.T) {
	f := newFake(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	env := f.azure()
	rm := env.Cloud.Services
	for k, v := range rm {
		v.Endpoint = "https://" + addr
		rm[k] = v
	}
	p := azurekeys.New(azurekeys.WithAzure(env), azurekeys.WithRetry(fastRetry), azurekeys.WithEndpoints(testEndpoints))
	_, err = p.Create(t.Context(), request(storageID, "key1", "", nil))
	var e *azurekeys.Error
	if err == nil || providers.IsPermanent(err) || !errors.As(err, &e) || e.Status != 0 || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("connection refused: %v", err)
	}
}

// The data-plane checks: the new key works; a refused key is transient (propagation), a resource that
// refuses keys altogether is permanent and says so.
func TestVerifyDataPlane(t *testing.T) {
	f := newFake(t)
	p := f.provider()
	req := request(storageID, "key1", "", nil)
	good := providers.Credential{Value: providers.NewValue(f.key(storageID, "key2")), CredentialID: "key2"}
	if err := p.Verify(t.Context(), req, good); err != nil {
		t.Fatalf("Verify(current key2): %v", err)
	}
	wrong := providers.Credential{Value: providers.NewValue(randB64(64)), CredentialID: "key2"}
	err := p.Verify(t.Context(), req, wrong)
	if err == nil || providers.IsPermanent(err) || !strings.Contains(err.Error(), "AuthenticationFailed") {
		t.Fatalf("a key the service refuses must be transient: %v", err)
	}
	for _, tc := range []struct{ code, says string }{
		{"KeyBasedAuthenticationNotPermitted", "key authentication is disabled"},
		{"AuthorizationFailure", "network rules"},
	} {
		f.fail(".blob.example.com/", -1, 403, http.Header{"x-ms-error-code": {tc.code}}, "")
		err := p.Verify(t.Context(), req, good)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v", tc.code, err)
		}
		f.clearFaults()
	}
	// The same resource verified through Resource Manager instead.
	lk := request(storageID, "key1", "", map[string]string{azurekeys.TagVerify: azurekeys.VerifyListKeys})
	f.fail(".blob.example.com/", -1, 403, http.Header{"x-ms-error-code": {"AuthorizationFailure"}}, "")
	if err := p.Verify(t.Context(), lk, good); err != nil {
		t.Errorf("list-keys verification: %v", err)
	}
	if err := p.Verify(t.Context(), lk, wrong); err == nil || providers.IsPermanent(err) {
		t.Errorf("list-keys verification of a value the slot does not hold: %v", err)
	}

	cosmos := request(cosmosID, "primary", "", nil)
	if err := p.Verify(t.Context(), cosmos, providers.Credential{Value: providers.NewValue(randB64(64)), CredentialID: "secondary"}); err == nil || providers.IsPermanent(err) {
		t.Errorf("cosmos: a refused key must be transient: %v", err)
	}
	f.fail(".documents.example.com/", -1, 403, nil, `{"code":"Forbidden","message":"Local Authorization is disabled. Use an AAD token to authorize all requests."}`)
	if err := p.Verify(t.Context(), cosmos, providers.Credential{Value: providers.NewValue(f.key(cosmosID, "secondary")), CredentialID: "secondary"}); !providers.IsPermanent(err) {
		t.Errorf("cosmos with local auth disabled must be permanent: %v", err)
	}
	search := request(searchID, "primary", "", nil)
	if err := p.Verify(t.Context(), search, providers.Credential{Value: providers.NewValue("NOTAKEY"), CredentialID: "secondary"}); err == nil || providers.IsPermanent(err) {
		t.Errorf("search: a refused key must be transient: %v", err)
	}
}

// The data-plane host comes from the resource name and the cloud, never from a tag; a cloud kvrotator
// does not know needs WithEndpoints, or a secret that needs no data-plane host. The need shows before
// anything is regenerated.
func TestUnknownCloudNeedsEndpoints(t *testing.T) {
	f := newFake(t)
	p := azurekeys.New(azurekeys.WithAzure(f.azure()), azurekeys.WithRetry(fastRetry))
	for _, extra := range []map[string]string{nil, {azurekeys.TagFormat: azurekeys.FormatConnectionString, azurekeys.TagVerify: azurekeys.VerifyListKeys}} {
		_, err := p.Create(t.Context(), request(storageID, "key1", "", extra))
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "WithEndpoints") {
			t.Fatalf("%v in an unknown cloud: %v", extra, err)
		}
	}
	if got := f.regenerated(storageID); len(got) != 0 {
		t.Fatalf("regenerated %v before failing", got)
	}
	lk := request(storageID, "key1", "", map[string]string{azurekeys.TagVerify: azurekeys.VerifyListKeys})
	c, err := p.Create(t.Context(), lk)
	if err != nil {
		t.Fatalf("a bare key verified through Resource Manager needs no data-plane host: %v", err)
	}
	if err := p.Verify(t.Context(), lk, c); err != nil {
		t.Fatal(err)
	}
}

// azure-keys-api-version replaces the default; Azure's 400 for an unknown version is permanent.
func TestAPIVersionOverride(t *testing.T) {
	f := newFake(t)
	_, err := f.provider().Create(t.Context(), request(storageID, "key1", "", map[string]string{azurekeys.TagAPIVersion: "2019-06-01"}))
	if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "InvalidApiVersionParameter") {
		t.Fatalf("err = %v", err)
	}
}

// An error message from Azure that quotes something key-like is redacted; no error carries a key.
func TestErrorsNeverCarryKeys(t *testing.T) {
	f := newFake(t)
	leaked := f.key(storageID, "key2")
	f.fail("/regeneratekey", -1, 400, nil, `{"error":{"code":"BadRequest","message":"key `+leaked+` is not acceptable"}}`)
	_, err := f.provider().Create(t.Context(), request(storageID, "key1", f.key(storageID, "key1"), nil))
	if err == nil || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("err = %v", err)
	}
	assertNoKeys(t, f, err.Error())
}

func assertNoKeys(t *testing.T, f *fakeAzure, outputs ...string) {
	t.Helper()
	for _, k := range f.allKeys() {
		for _, out := range outputs {
			if strings.Contains(out, k) || (len(k) > 16 && strings.Contains(out, k[:16])) {
				t.Fatalf("a key appears in %q", out)
			}
		}
	}
}
