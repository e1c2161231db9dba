package azurekeys_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/kvrotator/kvrotator/providers/azurekeys"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// fakeAzure is a local HTTPS server that answers as Azure Resource Manager does for the key actions of
// the supported resource types (paths, api-versions, bodies, 200 vs 202 + polling, the ARM error body),
// and as the data planes the provider verifies against (Blob Shared Key, Cosmos DB master key, AI Search
// api-key). Its keys change only when a regenerate request says which slot; it records every slot it
// regenerated so tests can assert which one the provider asked for.
//
// Data-plane hosts are {name}.blob.example.com, {name}.documents.example.com and
// {name}.search.example.com: the test server's client sends every *.example.com:443 request to the
// server, whose certificate (testCertificate) covers those names.
type fakeAzure struct {
	t    testing.TB
	srv  *httptest.Server
	cred *fakeCredential

	mu        sync.Mutex
	resources map[string]*fakeResource // key: lower-case resource id
	regens    []regen
	faults    []*fault
	ops       map[string]*fakeOp
	requests  []string // "POST host/subscriptions/…/listKeys" (paths only)
	issued    []string // every key the fake ever held
	pollsLeft int      // in-progress answers a long-running operation gives before it succeeds
}

// regen is one regeneration the server carried out.
type regen struct{ Resource, Slot string }

type fakeResource struct {
	id, family string
	name       string // last segment; namespace name for rules
	keys       map[string]string
	ids        map[string]string // App Configuration key ids by name
}

type fakeOp struct {
	res     *fakeResource
	slot    string
	pending int
	done    bool
}

// fault is a canned answer for requests whose host+path contains match (lower case); times < 0
// repeats forever.
type fault struct {
	match  string
	times  int
	status int
	header http.Header
	body   string
	hits   int
}

// testAudience is the Resource Manager audience the fake cloud declares: not the public one, so that a
// token requested for the public cloud would show.
const testAudience = "https://management.example.com"

// testEndpoints are the data-plane suffixes that resolve to the fake.
var testEndpoints = azurekeys.Endpoints{Storage: "example.com", Cosmos: "documents.example.com", Redis: "redis.example.com", Search: "search.example.com"}

const sub = "00000000-1111-2222-3333-444444444444"

// Resource ids of each supported type, as the tests use them.
var (
	storageID   = "/subscriptions/" + sub + "/resourceGroups/app/providers/Microsoft.Storage/storageAccounts/appdata"
	cosmosID    = "/subscriptions/" + sub + "/resourceGroups/app/providers/Microsoft.DocumentDB/databaseAccounts/appdb"
	cognitiveID = "/subscriptions/" + sub + "/resourceGroups/app/providers/Microsoft.CognitiveServices/accounts/appai"
	sbRuleID    = "/subscriptions/" + sub + "/resourceGroups/app/providers/Microsoft.ServiceBus/namespaces/appbus/authorizationRules/sender"
	sbQueueID   = "/subscriptions/" + sub + "/resourceGroups/app/providers/Microsoft.ServiceBus/namespaces/appbus/queues/orders/authorizationRules/listener"
	ehRuleID    = "/subscriptions/" + sub + "/resourceGroups/app/providers/Microsoft.EventHub/namespaces/apphub/eventhubs/clicks/authorizationRules/send"
	egTopicID   = "/subscriptions/" + sub + "/resourceGroups/app/providers/Microsoft.EventGrid/topics/appevents"
	redisID     = "/subscriptions/" + sub + "/resourceGroups/app/providers/Microsoft.Cache/redis/appcache"
	searchID    = "/subscriptions/" + sub + "/resourceGroups/app/providers/Microsoft.Search/searchServices/appsearch"
	appConfigID = "/subscriptions/" + sub + "/resourceGroups/app/providers/Microsoft.AppConfiguration/configurationStores/appcfg"
)

// apiVersions are the versions the fake accepts per family: the documented GA versions the provider
// should send.
var apiVersions = map[string]string{
	"storage": "2024-01-01", "cosmos": "2024-11-15", "cognitive": "2024-10-01", "servicebus": "2024-01-01",
	"eventhubs": "2024-01-01", "eventgrid": "2025-02-15", "redis": "2024-11-01", "search": "2023-11-01", "appconfig": "2024-06-01",
}

func newFake(t testing.TB) *fakeAzure {
	t.Helper()
	f := &fakeAzure{t: t, resources: map[string]*fakeResource{}, ops: map[string]*fakeOp{}, pollsLeft: 1,
		cred: &fakeCredential{token: "fake-arm-token-" + randHex(8)}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{testCertificate(t)}}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	for _, id := range []string{storageID, cosmosID, cognitiveID, sbRuleID, sbQueueID, ehRuleID, egTopicID, redisID, searchID, appConfigID} {
		f.add(id)
	}
	return f
}

// azure is the environment that points the provider at the fake: Resource Manager endpoint and
// audience from the cloud configuration, the test server's client as transport.
func (f *fakeAzure) azure() registry.Azure {
	return registry.Azure{
		Credential: f.cred,
		Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: f.srv.URL + "/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{cloud.ResourceManager: {Endpoint: f.srv.URL, Audience: testAudience}}},
		Transport: f.srv.Client(),
	}
}

// fastRetry keeps azcore's retries (they are under test) but with millisecond delays; a Retry-After
// up to 2 s is honoured, a longer one ends the retries at once.
var fastRetry = policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Second}

func (f *fakeAzure) provider(opts ...azurekeys.Option) *azurekeys.Provider {
	return azurekeys.New(append([]azurekeys.Option{azurekeys.WithAzure(f.azure()), azurekeys.WithRetry(fastRetry),
		azurekeys.WithPollFrequency(10 * time.Millisecond), azurekeys.WithEndpoints(testEndpoints)}, opts...)...)
}

func randB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newKey makes a key the way the family's service does (shape only: length and alphabet).
func newKey(family string) string {
	switch family {
	case "storage", "cosmos":
		return randB64(64)
	case "cognitive":
		return randHex(16)
	case "search":
		return strings.ToUpper(randHex(26))
	default:
		return randB64(32)
	}
}

func familyOf(id string) string {
	l := strings.ToLower(id)
	for _, m := range []struct{ ns, fam string }{
		{"microsoft.storage/", "storage"}, {"microsoft.documentdb/", "cosmos"}, {"microsoft.cognitiveservices/", "cognitive"},
		{"microsoft.servicebus/", "servicebus"}, {"microsoft.eventhub/", "eventhubs"}, {"microsoft.eventgrid/", "eventgrid"},
		{"microsoft.cache/", "redis"}, {"microsoft.search/", "search"}, {"microsoft.appconfiguration/", "appconfig"},
	} {
		if strings.Contains(l, "/providers/"+m.ns) {
			return m.fam
		}
	}
	return ""
}

// slotsOf are the fake's slot names per family: the names the regenerate request uses.
var slotsOf = map[string][]string{
	"storage": {"key1", "key2"}, "cosmos": {"primary", "secondary", "primaryReadonly", "secondaryReadonly"},
	"cognitive": {"Key1", "Key2"}, "servicebus": {"PrimaryKey", "SecondaryKey"}, "eventhubs": {"PrimaryKey", "SecondaryKey"},
	"eventgrid": {"key1", "key2"}, "redis": {"Primary", "Secondary"}, "search": {"primary", "secondary"},
	"appconfig": {"Primary", "Secondary", "Primary Read Only", "Secondary Read Only"},
}

func (f *fakeAzure) add(id string) *fakeResource {
	fam := familyOf(id)
	parts := strings.Split(id, "/")
	r := &fakeResource{id: id, family: fam, name: parts[len(parts)-1], keys: map[string]string{}, ids: map[string]string{}}
	if fam == "servicebus" || fam == "eventhubs" {
		r.name = parts[8] // the namespace
	}
	f.mu.Lock()
	for _, s := range slotsOf[fam] {
		r.keys[s] = newKey(fam)
		r.ids[s] = strings.ToUpper(randHex(8))
		f.issued = append(f.issued, r.keys[s])
	}
	f.resources[strings.ToLower(id)] = r
	f.mu.Unlock()
	return r
}

func (f *fakeAzure) resource(id string) *fakeResource {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.resources[strings.ToLower(id)]
}

// byName finds the resource of a family whose data-plane host name starts with name.
func (f *fakeAzure) byName(family, name string) *fakeResource {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.resources {
		if r.family == family && strings.EqualFold(r.name, name) {
			return r
		}
	}
	return nil
}

// key returns a resource's current key in a slot (the fake's slot name).
func (f *fakeAzure) key(id, slot string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.resources[strings.ToLower(id)].keys[slot]
}

// allKeys lists every key the fake ever held, for "no key in any output" checks.
func (f *fakeAzure) allKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.issued)
}

// regenerated lists the slots regenerated on a resource, in order.
func (f *fakeAzure) regenerated(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.regens {
		if strings.EqualFold(r.Resource, id) {
			out = append(out, r.Slot)
		}
	}
	return out
}

func (f *fakeAzure) requestCount(substr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if strings.Contains(strings.ToLower(r), strings.ToLower(substr)) {
			n++
		}
	}
	return n
}

// fail queues a canned answer for requests whose host+path contains match.
func (f *fakeAzure) fail(match string, times, status int, header http.Header, body string) *fault {
	fl := &fault{match: strings.ToLower(match), times: times, status: status, header: header, body: body}
	f.mu.Lock()
	f.faults = append(f.faults, fl)
	f.mu.Unlock()
	return fl
}

func (f *fakeAzure) clearFaults() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

// armError writes the Resource Manager error body.
func armError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-failure-cause", "gateway")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeAzure) serve(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+host+r.URL.Path)
	var fl *fault
	for _, c := range f.faults {
		if c.times != 0 && strings.Contains(strings.ToLower(host+r.URL.Path), c.match) {
			fl = c
			if c.times > 0 {
				c.times--
			}
			c.hits++
			break
		}
	}
	f.mu.Unlock()
	if fl != nil {
		for k, v := range fl.header {
			w.Header()[k] = v
		}
		if fl.body != "" {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
		}
		w.WriteHeader(fl.status)
		_, _ = io.WriteString(w, fl.body)
		return
	}
	switch {
	case strings.HasSuffix(host, ".blob.example.com"):
		f.serveBlob(w, r, strings.TrimSuffix(host, ".blob.example.com"))
	case strings.HasSuffix(host, ".documents.example.com"):
		f.serveCosmos(w, r, strings.TrimSuffix(host, ".documents.example.com"))
	case strings.HasSuffix(host, ".search.example.com"):
		f.serveSearch(w, r, strings.TrimSuffix(host, ".search.example.com"))
	default:
		f.serveARM(w, r)
	}
}

func (f *fakeAzure) serveARM(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.cred.token {
		armError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid.")
		return
	}
	path := r.URL.Path
	lower := strings.ToLower(path)
	if r.Method == http.MethodGet && strings.Contains(lower, "/operationresults/") {
		f.serveOperation(w, r)
		return
	}
	if r.Method != http.MethodPost {
		armError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested method is not allowed.")
		return
	}
	// Find the resource whose id prefixes the path, and the action after it.
	f.mu.Lock()
	var res *fakeResource
	for id, rr := range f.resources {
		if strings.HasPrefix(lower, id+"/") {
			res = rr
			break
		}
	}
	f.mu.Unlock()
	if res == nil {
		armError(w, http.StatusNotFound, "ResourceNotFound", "The Resource under resource group 'app' was not found.")
		return
	}
	if got := r.URL.Query().Get("api-version"); got != apiVersions[res.family] {
		armError(w, http.StatusBadRequest, "InvalidApiVersionParameter", fmt.Sprintf("The api-version '%s' is invalid.", got))
		return
	}
	action := strings.ToLower(path[len(res.id)+1:])
	switch {
	case action == "listkeys" || action == "listadminkeys":
		writeJSON(w, http.StatusOK, f.listKeys(res))
	case action == "regeneratekey" || action == "regeneratekeys" || strings.HasPrefix(action, "regenerateadminkey/"):
		f.regenerate(w, r, res, action)
	default:
		armError(w, http.StatusNotFound, "InvalidResourceType", "The resource type could not be found.")
	}
}

// listKeys renders a resource's keys as its listKeys action does.
func (f *fakeAzure) listKeys(res *fakeResource) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := res.keys
	switch res.family {
	case "storage":
		return map[string]any{"keys": []map[string]string{
			{"keyName": "key1", "value": k["key1"], "permissions": "FULL", "creationTime": "2026-01-01T00:00:00.0000000Z"},
			{"keyName": "key2", "value": k["key2"], "permissions": "FULL", "creationTime": "2026-01-01T00:00:00.0000000Z"},
		}}
	case "cosmos":
		return map[string]string{"primaryMasterKey": k["primary"], "secondaryMasterKey": k["secondary"],
			"primaryReadonlyMasterKey": k["primaryReadonly"], "secondaryReadonlyMasterKey": k["secondaryReadonly"]}
	case "cognitive", "eventgrid":
		s := slotsOf[res.family]
		return map[string]string{"key1": k[s[0]], "key2": k[s[1]]}
	case "servicebus", "eventhubs":
		rule := res.id[strings.LastIndex(res.id, "/")+1:]
		entity := ""
		if parts := strings.Split(res.id, "/"); len(parts) > 12 {
			entity = ";EntityPath=" + parts[10]
		}
		cs := func(key string) string {
			return "Endpoint=sb://" + res.name + ".servicebus.windows.net/;SharedAccessKeyName=" + rule + ";SharedAccessKey=" + key + entity
		}
		return map[string]string{"primaryConnectionString": cs(k["PrimaryKey"]), "secondaryConnectionString": cs(k["SecondaryKey"]),
			"primaryKey": k["PrimaryKey"], "secondaryKey": k["SecondaryKey"], "keyName": rule}
	case "redis", "search":
		s := slotsOf[res.family]
		return map[string]string{"primaryKey": k[s[0]], "secondaryKey": k[s[1]]}
	case "appconfig":
		var v []map[string]any
		for _, n := range slotsOf["appconfig"] {
			v = append(v, appConfigKey(res, n))
		}
		return map[string]any{"value": v}
	}
	return nil
}

func appConfigKey(res *fakeResource, name string) map[string]any {
	return map[string]any{"id": res.ids[name], "name": name, "value": res.keys[name],
		"connectionString": "Endpoint=https://" + res.name + ".azconfig.io;Id=" + res.ids[name] + ";Secret=" + res.keys[name],
		"lastModified":     "2026-01-01T00:00:00+00:00", "readOnly": strings.Contains(name, "Read Only")}
}

// regenerate reads the slot from the request as the type's API takes it and regenerates it: at once
// (200 with the keys), or as a long-running operation (Cosmos DB: 202 + Azure-AsyncOperation +
// Location; Event Grid: 202 + Location).
func (f *fakeAzure) regenerate(w http.ResponseWriter, r *http.Request, res *fakeResource, action string) {
	var body map[string]string
	raw, _ := io.ReadAll(r.Body)
	if len(raw) > 0 && json.Unmarshal(raw, &body) != nil {
		armError(w, http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized.")
		return
	}
	var slot string
	switch res.family {
	case "storage", "cognitive", "eventgrid":
		slot = body["keyName"]
	case "cosmos":
		slot = body["keyKind"]
	case "servicebus", "eventhubs", "redis":
		slot = body["keyType"]
	case "search":
		slot = strings.TrimPrefix(action, "regenerateadminkey/")
	case "appconfig":
		for n, id := range res.ids {
			if id == body["id"] {
				slot = n
			}
		}
	}
	if !slices.Contains(slotsOf[res.family], slot) {
		armError(w, http.StatusBadRequest, "InvalidRequestContent", fmt.Sprintf("Invalid key name %q.", slot))
		return
	}
	switch res.family {
	case "cosmos", "eventgrid":
		opID := randHex(8)
		f.mu.Lock()
		f.ops[opID] = &fakeOp{res: res, slot: slot, pending: f.pollsLeft}
		f.mu.Unlock()
		base := "https://" + r.Host + "/subscriptions/" + sub + "/providers/" + strings.Split(res.id, "/")[6] + "/locations/westus/operationResults/" + opID + "?api-version=" + apiVersions[res.family]
		if res.family == "cosmos" {
			w.Header().Set("Azure-AsyncOperation", strings.Replace(base, "operationResults", "operationResults/status", 1))
		}
		w.Header().Set("Location", base)
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusAccepted)
		return
	}
	f.apply(res, slot)
	switch res.family {
	case "appconfig":
		f.mu.Lock()
		k := appConfigKey(res, slot)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, k)
	default:
		writeJSON(w, http.StatusOK, f.listKeys(res))
	}
}

func (f *fakeAzure) apply(res *fakeResource, slot string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	res.keys[slot] = newKey(res.family)
	f.issued = append(f.issued, res.keys[slot])
	f.regens = append(f.regens, regen{Resource: res.id, Slot: slot})
}

// serveOperation answers the polling of a long-running regeneration: the Azure-AsyncOperation status
// monitor ({"status": "InProgress"|"Succeeded"}) and the Location URL (202 while running, then 200).
func (f *fakeAzure) serveOperation(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(r.URL.Path, "/")
	opID := parts[len(parts)-1]
	status := strings.Contains(strings.ToLower(r.URL.Path), "/operationresults/status/")
	f.mu.Lock()
	op := f.ops[opID]
	f.mu.Unlock()
	if op == nil {
		armError(w, http.StatusNotFound, "NotFound", "operation not found")
		return
	}
	f.mu.Lock()
	if !op.done && op.pending > 0 {
		op.pending--
		f.mu.Unlock()
		w.Header().Set("Retry-After", "0")
		if status {
			writeJSON(w, http.StatusOK, map[string]string{"status": "InProgress"})
		} else {
			w.WriteHeader(http.StatusAccepted)
		}
		return
	}
	first := !op.done
	op.done = true
	f.mu.Unlock()
	if first {
		f.apply(op.res, op.slot)
	}
	switch {
	case status:
		writeJSON(w, http.StatusOK, map[string]string{"status": "Succeeded"})
	case op.res.family == "eventgrid":
		writeJSON(w, http.StatusOK, f.listKeys(op.res))
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// serveBlob is the Blob service's Get Blob Service Properties with Shared Key authorization, checked
// against the account's current keys.
func (f *fakeAzure) serveBlob(w http.ResponseWriter, r *http.Request, account string) {
	q := r.URL.Query()
	if r.Method != http.MethodGet || r.URL.Path != "/" || q.Get("restype") != "service" || q.Get("comp") != "properties" {
		blobError(w, http.StatusBadRequest, "InvalidQueryParameterValue")
		return
	}
	res := f.byName("storage", account)
	if res == nil {
		blobError(w, http.StatusNotFound, "ResourceNotFound")
		return
	}
	if !f.sharedKeyValid(r, account, res) {
		blobError(w, http.StatusForbidden, "AuthenticationFailed")
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-ms-version", r.Header.Get("x-ms-version"))
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><StorageServiceProperties><DefaultServiceVersion>2025-01-05</DefaultServiceVersion></StorageServiceProperties>`)
}

func blobError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-ms-error-code", code)
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>Server failed to authenticate the request.</Message></Error>`, code)
}

// sharedKeyValid checks "Authorization: SharedKey {account}:{signature}" as the Storage service does
// (https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key), independently of the
// SDK that signed it.
func (f *fakeAzure) sharedKeyValid(r *http.Request, account string, res *fakeResource) bool {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "SharedKey "+account+":")
	if !ok || r.Header.Get("x-ms-date") == "" {
		return false
	}
	h := r.Header
	cl := h.Get("Content-Length")
	if cl == "0" {
		cl = ""
	}
	var names []string
	for k := range h {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-ms-") {
			names = append(names, lk)
		}
	}
	sort.Strings(names)
	var canon strings.Builder
	for _, n := range names {
		canon.WriteString(n + ":" + strings.TrimSpace(h.Get(n)) + "\n")
	}
	resource := "/" + account + r.URL.Path
	q := r.URL.Query()
	params := make([]string, 0, len(q))
	for k := range q {
		params = append(params, strings.ToLower(k))
	}
	sort.Strings(params)
	for _, p := range params {
		vals := q[p]
		sort.Strings(vals)
		resource += "\n" + p + ":" + strings.Join(vals, ",")
	}
	sts := strings.Join([]string{r.Method, h.Get("Content-Encoding"), h.Get("Content-Language"), cl, h.Get("Content-MD5"),
		h.Get("Content-Type"), h.Get("Date"), h.Get("If-Modified-Since"), h.Get("If-Match"), h.Get("If-None-Match"),
		h.Get("If-Unmodified-Since"), h.Get("Range")}, "\n") + "\n" + canon.String() + resource
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range []string{"key1", "key2"} {
		key, _ := base64.StdEncoding.DecodeString(res.keys[s])
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(sts))
		if hmac.Equal([]byte(auth), []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))) {
			return true
		}
	}
	return false
}

// serveCosmos is Get Database Account (GET /) with master-key authorization
// (https://learn.microsoft.com/rest/api/cosmos-db/access-control-on-cosmosdb-resources).
func (f *fakeAzure) serveCosmos(w http.ResponseWriter, r *http.Request, account string) {
	res := f.byName("cosmos", account)
	if res == nil || r.URL.Path != "/" {
		writeJSON(w, http.StatusNotFound, map[string]string{"code": "NotFound", "message": "Resource Not Found"})
		return
	}
	auth, err := url.QueryUnescape(r.Header.Get("Authorization"))
	sig, ok := strings.CutPrefix(auth, "type=master&ver=1.0&sig=")
	date := r.Header.Get("x-ms-date")
	if d, perr := http.ParseTime(date); err != nil || !ok || perr != nil || time.Since(d).Abs() > 15*time.Minute || r.Header.Get("x-ms-version") == "" {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"code": "Unauthorized", "message": "Required Header authorization is missing or malformed."})
		return
	}
	sts := "get\n\n\n" + strings.ToLower(date) + "\n\n"
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range slotsOf["cosmos"] {
		key, _ := base64.StdEncoding.DecodeString(res.keys[s])
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(sts))
		if hmac.Equal([]byte(sig), []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))) {
			writeJSON(w, http.StatusOK, map[string]any{"id": account, "_self": "", "writableLocations": []any{}})
			return
		}
	}
	writeJSON(w, http.StatusUnauthorized, map[string]string{"code": "Unauthorized",
		"message": "The input authorization token can't serve the request. The wrong key is being used."})
}

// serveSearch is Get Service Statistics with an admin api-key.
func (f *fakeAzure) serveSearch(w http.ResponseWriter, r *http.Request, service string) {
	res := f.byName("search", service)
	if res == nil || r.URL.Path != "/servicestats" || r.URL.Query().Get("api-version") == "" {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "NotFound", "message": "not found"}})
		return
	}
	f.mu.Lock()
	ok := r.Header.Get("api-key") != "" && (r.Header.Get("api-key") == res.keys["primary"] || r.Header.Get("api-key") == res.keys["secondary"])
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"counters": map[string]any{}, "limits": map[string]any{}})
}

// fakeCredential hands out a static token and records the scopes asked for.
type fakeCredential struct {
	token  string
	mu     sync.Mutex
	scopes [][]string
}

func (c *fakeCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	c.scopes = append(c.scopes, slices.Clone(o.Scopes))
	c.mu.Unlock()
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (c *fakeCredential) Scopes() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.scopes)
}

// testCertificate is a self-signed certificate for 127.0.0.1 and the fake's data-plane host names; the
// test server's client trusts it.
func testCertificate(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fake azure"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"example.com", "*.example.com", "*.blob.example.com", "*.documents.example.com", "*.search.example.com"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
