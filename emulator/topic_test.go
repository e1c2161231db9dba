package emulator_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
)

const topicKey = "dG9waWMta2V5LWZvci10ZXN0cy1vbmx5LTAxMjM0NTY3ODk="

// startTopics runs an emulator with four topics: "outcomes" (key, both schemas), "keyless" (tokens
// only), "eg-only" and "ce-only" (key, one schema each).
func startTopics(t *testing.T, mutate func(*emulator.Config)) *emulator.Server {
	t.Helper()
	return start(t, func(c *emulator.Config) {
		c.Topics = []emulator.TopicConfig{
			{Name: "outcomes", Key: topicKey},
			{Name: "keyless"},
			{Name: "eg-only", Key: topicKey, Schema: emulator.EventGridSchema},
			{Name: "ce-only", Key: topicKey, Schema: emulator.CloudEventsSchema},
		}
		if mutate != nil {
			mutate(c)
		}
	})
}

// topicClientOptions trusts the emulator's CA and makes one try per call, so status codes surface.
func topicClientOptions(srv *emulator.Server) *azeventgrid.ClientOptions {
	return &azeventgrid.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: srv.HTTPClient(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
}

func TestTopicSDKEventGridSchemaSharedKey(t *testing.T) {
	srv := startTopics(t, nil)
	c, err := azeventgrid.NewClientWithSharedKeyCredential(srv.TopicEndpoint("outcomes"), azcore.NewKeyCredential(topicKey), topicClientOptions(srv))
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	events := []azeventgrid.Event{
		{ID: to("e1"), EventType: to("Test.One"), Subject: to("/a"), EventTime: &when, DataVersion: to("1.0"), Data: map[string]any{"n": 1}},
		{ID: to("e2"), EventType: to("Test.Two"), Subject: to("/b"), EventTime: &when, DataVersion: to("1.0"), Data: "text"},
	}
	if _, err := c.PublishEvents(ctx(t), events, nil); err != nil {
		t.Fatalf("PublishEvents: %v", err)
	}
	got := srv.TopicEvents("outcomes")
	if len(got) != 2 {
		t.Fatalf("topic received %d events, want 2", len(got))
	}
	for i, raw := range got {
		var ev azeventgrid.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if *ev.ID != *events[i].ID || *ev.EventType != *events[i].EventType || *ev.Subject != *events[i].Subject ||
			*ev.DataVersion != "1.0" || !ev.EventTime.Equal(when) {
			t.Fatalf("event %d: %s", i, raw)
		}
	}
	if other := srv.TopicEvents("keyless"); len(other) != 0 {
		t.Fatalf("another topic received %d events", len(other))
	}
	if srv.TopicEvents("nosuchtopic") != nil {
		t.Fatal("unknown topic has events")
	}
}

func TestTopicSDKCloudEventsManagedIdentity(t *testing.T) {
	srv := startTopics(t, nil)
	// The real ManagedIdentityCredential asks the emulator's MSI endpoint for https://eventgrid.azure.net.
	c, err := azeventgrid.NewClient(srv.TopicEndpoint("keyless"), managedIdentity(t, srv, ""), topicClientOptions(srv))
	if err != nil {
		t.Fatal(err)
	}
	ce, err := messaging.NewCloudEvent("/tests", "Test.Cloud", map[string]string{"k": "v"}, &messaging.CloudEventOptions{
		Subject: to("/x"), Extensions: map[string]any{"dataversion": "1.0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishCloudEvents(ctx(t), []messaging.CloudEvent{ce}, nil); err != nil {
		t.Fatalf("PublishCloudEvents: %v", err)
	}
	got := srv.TopicEvents("keyless")
	if len(got) != 1 {
		t.Fatalf("topic received %d events", len(got))
	}
	var back messaging.CloudEvent
	if err := json.Unmarshal(got[0], &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != ce.ID || back.Source != "/tests" || back.Type != "Test.Cloud" || *back.Subject != "/x" || back.Extensions["dataversion"] != "1.0" {
		t.Fatalf("received %s", got[0])
	}

	// The same identity publishes to a topic that also has a key, and in the Event Grid schema.
	eg, err := azeventgrid.NewClient(srv.TopicEndpoint("outcomes"), managedIdentity(t, srv, ""), topicClientOptions(srv))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := eg.PublishEvents(ctx(t), []azeventgrid.Event{{ID: to("1"), EventType: to("T"), Subject: to("/s"), EventTime: &now, DataVersion: to("1"), Data: nil}}, nil); err == nil {
		t.Fatal("an event without data was accepted")
	}
	if _, err := eg.PublishEvents(ctx(t), []azeventgrid.Event{{ID: to("1"), EventType: to("T"), Subject: to("/s"), EventTime: &now, DataVersion: to("1"), Data: map[string]int{}}}, nil); err != nil {
		t.Fatalf("PublishEvents with managed identity: %v", err)
	}
}

func TestTopicSDKErrors(t *testing.T) {
	srv := startTopics(t, nil)
	now := time.Now()
	ev := []azeventgrid.Event{{ID: to("1"), EventType: to("T"), Subject: to("/s"), EventTime: &now, DataVersion: to("1"), Data: 1}}
	publish := func(endpoint, key string) error {
		c, err := azeventgrid.NewClientWithSharedKeyCredential(endpoint, azcore.NewKeyCredential(key), topicClientOptions(srv))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.PublishEvents(ctx(t), ev, nil)
		return err
	}
	status := func(err error) (int, string) {
		var re *azcore.ResponseError
		if !errors.As(err, &re) {
			t.Fatalf("want *azcore.ResponseError, got %v", err)
		}
		return re.StatusCode, re.ErrorCode
	}
	if s, code := status(publish(srv.TopicEndpoint("outcomes"), "wrong")); s != 401 || code != "Unauthorized" {
		t.Fatalf("wrong key: %d %s", s, code)
	}
	if s, _ := status(publish(srv.TopicEndpoint("keyless"), topicKey)); s != 401 {
		t.Fatalf("key on a topic without one: %d", s)
	}
	if s, code := status(publish(srv.TopicEndpoint("nosuchtopic"), topicKey)); s != 404 || code != "NotFound" {
		t.Fatalf("unknown topic: %d %s", s, code)
	}
	srv.SetTopicDown("outcomes", true)
	if s, code := status(publish(srv.TopicEndpoint("outcomes"), topicKey)); s != 503 || code != "ServiceUnavailable" {
		t.Fatalf("down: %d %s", s, code)
	}
	srv.SetTopicDown("OUTCOMES", false) // names match case-insensitively
	if err := publish(srv.TopicEndpoint("outcomes"), topicKey); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if n := len(srv.TopicEvents("outcomes")); n != 1 {
		t.Fatalf("topic holds %d events, want 1 (rejected publishes keep nothing)", n)
	}
	srv.SetTopicDown("nosuchtopic", true) // ignored
}

// topicResponse is a raw answer with its Event Grid error envelope decoded.
type topicResponse struct {
	Status int
	Header http.Header
	Body   []byte
	Code   string // error.code
	Detail string // error.details[0].code
	Msg    string // error.message
}

// rawTopic posts body to a topic's endpoint (api-version added unless path has a query) with headers.
func rawTopic(t *testing.T, srv *emulator.Server, method, url string, headers map[string]string, body io.Reader) topicResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := topicResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Details []struct {
					Code string `json:"code"`
				} `json:"details"`
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%d answer is not Event Grid's error envelope: %s", resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("error Content-Type %q", ct)
		}
		r.Code, r.Msg = e.Error.Code, e.Error.Message
		if len(e.Error.Details) > 0 {
			r.Detail = e.Error.Details[0].Code
		}
	}
	return r
}

const (
	validEG = `[{"id":"1","subject":"/s","eventType":"T","eventTime":"2026-01-02T03:04:05Z","data":{"a":1},"dataVersion":"1.0"}]`
	validCE = `{"specversion":"1.0","id":"1","source":"/src","type":"T","time":"2026-01-02T03:04:05.123Z","subject":"/s","data":{"a":1},"dataversion":"1.0"}`
)

func TestTopicAuthentication(t *testing.T) {
	srv := startTopics(t, nil)
	other := start(t, func(c *emulator.Config) { c.KeyDir = t.TempDir() }) // its tokens are forgeries here
	sysID := emulator.DefaultIdentity().ClientID
	egToken, err := srv.IssueToken(sysID, "https://eventgrid.azure.net", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	egTokenSlash, _ := srv.IssueToken(sysID, "https://eventgrid.azure.net/", time.Hour)
	vaultToken, _ := srv.IssueToken(sysID, "https://vault.azure.net", time.Hour)
	expired, _ := srv.IssueToken(sysID, "https://eventgrid.azure.net", -time.Minute)
	forged, _ := other.IssueToken(sysID, "https://eventgrid.azure.net", time.Hour)

	cases := []struct {
		name   string
		topic  string
		header map[string]string
		status int
		detail string
	}{
		{"no credential", "outcomes", nil, 401, "MissingAuthorization"},
		{"empty bearer", "outcomes", map[string]string{"Authorization": "Bearer "}, 401, "MissingAuthorization"},
		{"basic auth", "outcomes", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, "MissingAuthorization"},
		{"wrong key", "outcomes", map[string]string{"aeg-sas-key": "wrong"}, 401, "InvalidKey"},
		{"key on a keyless topic", "keyless", map[string]string{"aeg-sas-key": topicKey}, 401, "InvalidKey"},
		{"sas token", "outcomes", map[string]string{"aeg-sas-token": "r=x&e=1&s=y"}, 401, "UnsupportedAuthorization"},
		{"vault audience", "outcomes", map[string]string{"Authorization": "Bearer " + vaultToken}, 401, "InvalidToken"},
		{"expired token", "outcomes", map[string]string{"Authorization": "Bearer " + expired}, 401, "InvalidToken"},
		{"forged token", "outcomes", map[string]string{"Authorization": "Bearer " + forged}, 401, "InvalidToken"},
		{"garbage token", "outcomes", map[string]string{"Authorization": "Bearer not.a.jwt"}, 401, "InvalidToken"},
		{"key", "outcomes", map[string]string{"aeg-sas-key": topicKey}, 200, ""},
		{"token", "outcomes", map[string]string{"Authorization": "Bearer " + egToken}, 200, ""},
		{"token with trailing slash audience", "keyless", map[string]string{"Authorization": "bearer " + egTokenSlash}, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/json"}
			for k, v := range c.header {
				h[k] = v
			}
			before := len(srv.TopicEvents(c.topic))
			// A bad body too: authentication is checked first.
			body := validEG
			if c.status != 200 {
				body = "{"
			}
			r := rawTopic(t, srv, "POST", srv.TopicEndpoint(c.topic)+"?api-version=2018-01-01", h, strings.NewReader(body))
			if r.Status != c.status || r.Detail != c.detail {
				t.Fatalf("got %d %s/%s %q, want %d %s", r.Status, r.Code, r.Detail, r.Msg, c.status, c.detail)
			}
			if c.status == 401 && r.Code != "Unauthorized" {
				t.Fatalf("code %q", r.Code)
			}
			for _, v := range c.header {
				if len(v) > 12 && bytes.Contains(r.Body, []byte(strings.TrimPrefix(v, "Bearer "))) {
					t.Fatal("the answer echoes the credential")
				}
			}
			want := before
			if c.status == 200 {
				want++
				if len(r.Body) != 0 {
					t.Fatalf("success body %q, want empty", r.Body)
				}
			}
			if n := len(srv.TopicEvents(c.topic)); n != want {
				t.Fatalf("topic holds %d events, want %d", n, want)
			}
		})
	}
}

func TestTopicRejectsMalformedRequests(t *testing.T) {
	srv := startTopics(t, nil)
	eg := func(mutate func(m map[string]any)) string {
		var evs []map[string]any
		if err := json.Unmarshal([]byte(validEG), &evs); err != nil {
			t.Fatal(err)
		}
		mutate(evs[0])
		b, _ := json.Marshal(evs)
		return string(b)
	}
	ce := func(mutate func(m map[string]any)) string {
		var ev map[string]any
		if err := json.Unmarshal([]byte(validCE), &ev); err != nil {
			t.Fatal(err)
		}
		mutate(ev)
		b, _ := json.Marshal([]any{ev})
		return string(b)
	}
	const (
		jsonCT  = "application/json; charset=utf-8"
		batchCT = "application/cloudevents-batch+json; charset=utf-8"
		oneCT   = "application/cloudevents+json"
	)
	type tc struct {
		name        string
		topic       string
		contentType string
		body        string
		status      int
		detail      string
		mention     string // the message names this
	}
	cases := []tc{
		{"event grid ok", "outcomes", jsonCT, validEG, 200, "", ""},
		{"cloudevents batch ok", "outcomes", batchCT, "[" + validCE + "]", 200, "", ""},
		{"cloudevent single ok", "outcomes", oneCT, validCE, 200, "", ""},
		{"event grid data null ok", "outcomes", jsonCT, eg(func(m map[string]any) { m["data"] = nil }), 200, "", ""},
		{"event grid on eg-only topic ok", "eg-only", jsonCT, validEG, 200, "", ""},
		{"cloudevents on ce-only topic ok", "ce-only", batchCT, "[" + validCE + "]", 200, "", ""},

		{"no content type", "outcomes", "", validEG, 400, "UnsupportedContentType", "Content-Type"},
		{"text content type", "outcomes", "text/plain", validEG, 400, "UnsupportedContentType", "text/plain"},
		{"not json", "outcomes", jsonCT, "{not json", 400, "InputJsonInvalid", "JSON array"},
		{"object not array", "outcomes", jsonCT, strings.Trim(validEG, "[]"), 400, "InputJsonInvalid", "JSON array"},
		{"empty array", "outcomes", jsonCT, "[]", 400, "InputJsonInvalid", "at least one"},
		{"array of strings", "outcomes", jsonCT, `["x"]`, 400, "InputJsonInvalid", "not a JSON object"},
		{"bad eventTime", "outcomes", jsonCT, eg(func(m map[string]any) { m["eventTime"] = "yesterday" }), 400, "InputJsonInvalid", "eventTime"},
		{"numeric id", "outcomes", jsonCT, eg(func(m map[string]any) { m["id"] = 7 }), 400, "InputJsonInvalid", "'id'"},
		{"metadataVersion 2", "outcomes", jsonCT, eg(func(m map[string]any) { m["metadataVersion"] = "2" }), 400, "InputJsonInvalid", "metadataVersion"},
		{"cloudevents as event grid", "outcomes", jsonCT, "[" + validCE + "]", 400, "InputJsonInvalid", "'eventType'"},

		{"cloudevents no specversion", "outcomes", batchCT, ce(func(m map[string]any) { delete(m, "specversion") }), 400, "InputJsonInvalid", "specversion"},
		{"cloudevents specversion 0.3", "outcomes", batchCT, ce(func(m map[string]any) { m["specversion"] = "0.3" }), 400, "InputJsonInvalid", "specversion"},
		{"cloudevents no source", "outcomes", batchCT, ce(func(m map[string]any) { delete(m, "source") }), 400, "InputJsonInvalid", "source"},
		{"cloudevents no type", "outcomes", batchCT, ce(func(m map[string]any) { delete(m, "type") }), 400, "InputJsonInvalid", "type"},
		{"cloudevents empty id", "outcomes", batchCT, ce(func(m map[string]any) { m["id"] = "" }), 400, "InputJsonInvalid", "id"},
		{"cloudevents bad time", "outcomes", batchCT, ce(func(m map[string]any) { m["time"] = "noon" }), 400, "InputJsonInvalid", "time"},
		{"cloudevents data and data_base64", "outcomes", batchCT, ce(func(m map[string]any) { m["data_base64"] = "AA==" }), 400, "InputJsonInvalid", "data_base64"},
		{"cloudevents upper-case attribute", "outcomes", batchCT, ce(func(m map[string]any) { m["dataVersion"] = "1" }), 400, "InputJsonInvalid", "dataVersion"},
		{"cloudevents batch type with object", "outcomes", batchCT, validCE, 400, "InputJsonInvalid", "JSON array"},
		{"cloudevents single type with array", "outcomes", oneCT, "[" + validCE + "]", 400, "InputJsonInvalid", "one CloudEvents JSON object"},
		{"cloudevents on eg-only topic", "eg-only", batchCT, "[" + validCE + "]", 400, "InputSchemaMismatch", "eventgrid"},
		{"event grid on ce-only topic", "ce-only", jsonCT, validEG, 400, "InputSchemaMismatch", "cloudevents"},
	}
	for _, field := range []string{"id", "subject", "eventType", "eventTime", "data", "dataVersion"} {
		cases = append(cases, tc{"event grid without " + field, "outcomes", jsonCT,
			eg(func(m map[string]any) { delete(m, field) }), 400, "InputJsonInvalid", "'" + field + "'"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"aeg-sas-key": topicKey}
			if c.contentType != "" {
				h["Content-Type"] = c.contentType
			}
			before := len(srv.TopicEvents(c.topic))
			r := rawTopic(t, srv, "POST", srv.TopicEndpoint(c.topic)+"?api-version=2018-01-01", h, strings.NewReader(c.body))
			if r.Status != c.status || r.Detail != c.detail {
				t.Fatalf("got %d %s/%s %q, want %d %s", r.Status, r.Code, r.Detail, r.Msg, c.status, c.detail)
			}
			if c.status == 400 && (r.Code != "BadRequest" || !strings.Contains(r.Msg, c.mention)) {
				t.Fatalf("error %s %q should name %q", r.Code, r.Msg, c.mention)
			}
			want := before
			if c.status == 200 {
				want++
			}
			if n := len(srv.TopicEvents(c.topic)); n != want {
				t.Fatalf("topic holds %d events, want %d", n, want)
			}
		})
	}

	t.Run("missing api-version", func(t *testing.T) {
		r := rawTopic(t, srv, "POST", srv.TopicEndpoint("outcomes"), map[string]string{"aeg-sas-key": topicKey, "Content-Type": jsonCT}, strings.NewReader(validEG))
		if r.Status != 400 || r.Detail != "MissingApiVersion" {
			t.Fatalf("%d %s", r.Status, r.Detail)
		}
	})

	// Over 1 MB: with a Content-Length, and streamed without one.
	big := `[{"id":"1","subject":"/s","eventType":"T","eventTime":"2026-01-02T03:04:05Z","dataVersion":"1","data":"` + strings.Repeat("x", 1<<20) + `"}]`
	for name, body := range map[string]io.Reader{
		"too large":         strings.NewReader(big),
		"too large chunked": io.MultiReader(strings.NewReader(big)), // no Content-Length: chunked
	} {
		t.Run(name, func(t *testing.T) {
			h := map[string]string{"aeg-sas-key": topicKey, "Content-Type": jsonCT}
			r := rawTopic(t, srv, "POST", srv.TopicEndpoint("outcomes")+"?api-version=2018-01-01", h, body)
			if r.Status != 413 || r.Code != "RequestEntityTooLarge" {
				t.Fatalf("%d %s %q", r.Status, r.Code, r.Msg)
			}
		})
	}
	t.Run("exactly 1 MB is accepted", func(t *testing.T) {
		prefix := `[{"id":"1","subject":"/s","eventType":"T","eventTime":"2026-01-02T03:04:05Z","dataVersion":"1","data":"`
		suffix := `"}]`
		body := prefix + strings.Repeat("x", 1<<20-len(prefix)-len(suffix)) + suffix
		r := rawTopic(t, srv, "POST", srv.TopicEndpoint("outcomes")+"?api-version=2018-01-01",
			map[string]string{"aeg-sas-key": topicKey, "Content-Type": jsonCT}, strings.NewReader(body))
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Msg)
		}
	})
}

func TestTopicRoutingAndDown(t *testing.T) {
	srv := startTopics(t, nil)
	h := map[string]string{"aeg-sas-key": topicKey, "Content-Type": "application/json"}
	q := "?api-version=2018-01-01"
	if r := rawTopic(t, srv, "GET", srv.TopicEndpoint("outcomes")+q, h, nil); r.Status != 405 || r.Header.Get("Allow") != "POST" {
		t.Fatalf("GET: %d allow=%q", r.Status, r.Header.Get("Allow"))
	}
	if r := rawTopic(t, srv, "POST", srv.URL()+"/topics/nosuch/api/events"+q, h, strings.NewReader(validEG)); r.Status != 404 || r.Code != "NotFound" {
		t.Fatalf("unknown topic: %d %s", r.Status, r.Code)
	}
	if r := rawTopic(t, srv, "POST", srv.URL()+"/topics/outcomes/other"+q, h, strings.NewReader(validEG)); r.Status != 404 {
		t.Fatalf("other path: %d", r.Status)
	}
	if got, want := srv.TopicEndpoint("Outcomes"), srv.URL()+"/topics/outcomes/api/events"; got != want {
		t.Fatalf("TopicEndpoint %q, want %q", got, want)
	}
	if r := rawTopic(t, srv, "POST", srv.URL()+"/topics/OUTCOMES/api/events"+q, h, strings.NewReader(validEG)); r.Status != 200 {
		t.Fatalf("upper-case name: %d", r.Status)
	}

	srv.SetTopicDown("outcomes", true)
	// Down answers 503 before looking at credentials or the body.
	if r := rawTopic(t, srv, "POST", srv.TopicEndpoint("outcomes")+q, nil, strings.NewReader("{")); r.Status != 503 || r.Code != "ServiceUnavailable" {
		t.Fatalf("down: %d %s", r.Status, r.Code)
	}
	if r := rawTopic(t, srv, "POST", srv.TopicEndpoint("keyless")+q, nil, strings.NewReader(validEG)); r.Status != 401 {
		t.Fatalf("other topic while one is down: %d", r.Status)
	}
	srv.SetTopicDown("outcomes", false)
	if r := rawTopic(t, srv, "POST", srv.TopicEndpoint("outcomes")+q, h, strings.NewReader(validEG)); r.Status != 200 {
		t.Fatalf("up: %d %s", r.Status, r.Msg)
	}
	if n := len(srv.TopicEvents("outcomes")); n != 2 {
		t.Fatalf("%d events", n)
	}
	// The returned slice is a copy.
	evs := srv.TopicEvents("outcomes")
	evs[0][0] = 'X'
	if srv.TopicEvents("outcomes")[0][0] != '{' {
		t.Fatal("TopicEvents exposes the emulator's storage")
	}
}

func TestTopicNoAuthMode(t *testing.T) {
	srv := start(t, func(c *emulator.Config) {
		c.NoAuth = true
		c.Topics = []emulator.TopicConfig{{Name: "outcomes", Key: topicKey}}
	})
	url := srv.TopicEndpoint("outcomes")
	if !strings.HasPrefix(url, "http://") {
		t.Fatalf("no-auth endpoint %q", url)
	}
	r := rawTopic(t, srv, "POST", url+"?api-version=2018-01-01", map[string]string{"Content-Type": "application/json"}, strings.NewReader(validEG))
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Msg)
	}
}

func TestTopicConfigValidation(t *testing.T) {
	for name, topics := range map[string][]emulator.TopicConfig{
		"short name":    {{Name: "ab"}},
		"bad char":      {{Name: "my_topic"}},
		"long name":     {{Name: strings.Repeat("a", 51)}},
		"duplicate":     {{Name: "topic"}, {Name: "TOPIC"}},
		"bad schema":    {{Name: "topic", Schema: "custom"}},
		"empty name":    {{}},
		"dotted name":   {{Name: "a.b.c"}},
		"slash in name": {{Name: "a/b"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := emulator.New(emulator.Config{KeyDir: emulatortest.KeyDir(), Vaults: []emulator.VaultConfig{{Name: "myvault"}}, Topics: topics})
			if err == nil || !strings.Contains(err.Error(), "topic") {
				t.Fatalf("New accepted %+v: %v", topics, err)
			}
		})
	}
	if _, err := emulator.New(emulator.Config{KeyDir: emulatortest.KeyDir(), Vaults: []emulator.VaultConfig{{Name: "myvault"}},
		Topics: []emulator.TopicConfig{{Name: "a-b-" + strings.Repeat("c", 46), Schema: "CloudEvents"}}}); err != nil {
		t.Fatalf("valid topic rejected: %v", err)
	}
}
