package emulator_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

func TestLimitsThroughSDK(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t, srv, "myvault")
	tags := func(n, keyLen, valLen int) map[string]*string {
		m := map[string]*string{}
		for i := range n {
			m[fmt.Sprintf("%0*d", keyLen, i)] = to(strings.Repeat("v", valLen))
		}
		return m
	}
	cases := []struct {
		name   string
		secret string
		params azsecrets.SetSecretParameters
		ok     bool
	}{
		{"max value", "ok-value", azsecrets.SetSecretParameters{Value: to(strings.Repeat("x", 25*1024))}, true},
		{"value over 25 KB", "big", azsecrets.SetSecretParameters{Value: to(strings.Repeat("x", 25*1024+1))}, false},
		{"15 tags of 512/512", "ok-tags", azsecrets.SetSecretParameters{Value: to("x"), Tags: tags(15, 512, 512)}, true},
		{"16 tags", "tags16", azsecrets.SetSecretParameters{Value: to("x"), Tags: tags(16, 3, 1)}, false},
		{"tag name 513", "tagname", azsecrets.SetSecretParameters{Value: to("x"), Tags: tags(1, 513, 1)}, false},
		{"tag value 513", "tagvalue", azsecrets.SetSecretParameters{Value: to("x"), Tags: tags(1, 3, 513)}, false},
		{"content type 256", "ctype", azsecrets.SetSecretParameters{Value: to("x"), ContentType: to(strings.Repeat("c", 256))}, false},
		{"underscore in name", "bad_name", azsecrets.SetSecretParameters{Value: to("x")}, false},
		{"dot in name", "bad.name", azsecrets.SetSecretParameters{Value: to("x")}, false},
		{"name of 128", strings.Repeat("n", 128), azsecrets.SetSecretParameters{Value: to("x")}, false},
		{"name of 127", strings.Repeat("n", 127), azsecrets.SetSecretParameters{Value: to("x")}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.SetSecret(ctx(t), tc.secret, tc.params, nil)
			if tc.ok {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			respErr(t, err, http.StatusBadRequest, "BadParameter")
		})
	}
	// An invalid name is rejected on GET too, and nothing was written.
	_, err := c.GetSecret(ctx(t), "bad_name", "", nil)
	respErr(t, err, http.StatusBadRequest, "BadParameter")
	_, err = c.GetSecret(ctx(t), "big", "", nil)
	respErr(t, err, http.StatusNotFound, "SecretNotFound")
}

// TestBadRequestsGetRealErrors sends what the SDK never would: every one gets Key Vault's 400 body,
// never a 500 or a panic, and the error never echoes the body.
func TestBadRequestsGetRealErrors(t *testing.T) {
	srv := start(t, nil)
	tok := systemToken(t, srv)
	huge := []byte(`{"value":"` + strings.Repeat("a", 2<<20) + `"}`)
	cases := []struct {
		name, method, path string
		body               []byte
		status             int
		code               string
	}{
		{"malformed JSON", "PUT", "/secrets/s?api-version=7.5", []byte(`{"value":"sup3r-secret`), 400, "BadParameter"},
		{"value is a number", "PUT", "/secrets/s?api-version=7.5", []byte(`{"value":12345}`), 400, "BadParameter"},
		{"tags not strings", "PUT", "/secrets/s?api-version=7.5", []byte(`{"value":"x","tags":{"a":1}}`), 400, "BadParameter"},
		{"exp a string", "PUT", "/secrets/s?api-version=7.5", []byte(`{"value":"x","attributes":{"exp":"1700000000"}}`), 400, "BadParameter"},
		{"exp fractional", "PUT", "/secrets/s?api-version=7.5", []byte(`{"value":"x","attributes":{"exp":1700000000.5}}`), 400, "BadParameter"},
		{"enabled a string", "PUT", "/secrets/s?api-version=7.5", []byte(`{"value":"x","attributes":{"enabled":"yes"}}`), 400, "BadParameter"},
		{"array body", "PUT", "/secrets/s?api-version=7.5", []byte(`["x"]`), 400, "BadParameter"},
		{"missing value", "PUT", "/secrets/s?api-version=7.5", []byte(`{"contentType":"x"}`), 400, "BadParameter"},
		{"empty body", "PUT", "/secrets/s?api-version=7.5", []byte(``), 400, "BadParameter"},
		{"huge body", "PUT", "/secrets/s?api-version=7.5", huge, 400, "BadParameter"},
		{"patch malformed", "PATCH", "/secrets/s/?api-version=7.5", []byte(`{`), 400, "BadParameter"},
		{"restore garbage", "POST", "/secrets/restore?api-version=7.5", []byte(`{"value":"!!!"}`), 400, "BadParameter"},
		{"restore wrong type", "POST", "/secrets/restore?api-version=7.5", []byte(`{"value":[1]}`), 400, "BadParameter"},
		{"no api-version", "GET", "/secrets", nil, 400, "BadParameter"},
		{"unknown api-version", "GET", "/secrets?api-version=banana", nil, 400, "BadParameter"},
		{"bad skiptoken", "GET", "/secrets?api-version=7.5&$skiptoken=***", nil, 400, "BadParameter"},
		{"wrong method", "POST", "/secrets/s?api-version=7.5", nil, 405, "MethodNotAllowed"},
		{"unknown path", "GET", "/secrets/a/b/c?api-version=7.5", nil, 404, "NotFound"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := raw(t, srv, tc.method, tc.path, tok, tc.body)
			code, _ := r.errorCode(t)
			if r.Status != tc.status || code != tc.code {
				t.Fatalf("%d %s, want %d %s: %s", r.Status, code, tc.status, tc.code, r.Body)
			}
			if strings.Contains(string(r.Body), "sup3r") || strings.Contains(string(r.Body), "12345") {
				t.Fatalf("error echoes the request body: %s", r.Body)
			}
		})
	}
	// None of it wrote anything.
	r := raw(t, srv, "GET", "/secrets?api-version=7.5", tok, nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"value":[]`) {
		t.Fatalf("bad requests wrote secrets: %s", r.Body)
	}
	// Accepted api-versions.
	for _, v := range []string{"7.0", "7.4", "7.5", "7.6-preview.2", "2025-07-01", "2026-04-01"} {
		if r := raw(t, srv, "GET", "/secrets?api-version="+v, tok, nil); r.Status != 200 {
			t.Fatalf("api-version %s: %d", v, r.Status)
		}
	}
}
