package awsiam_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/kvrotator/kvrotator/providers/awsiam"
)

// emptyList answers ListAccessKeys with "200 OK" and no body (a proxy or middlebox that lost it), and
// passes every other request on.
type emptyList struct{ next http.RoundTripper }

func (e emptyList) RoundTrip(r *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(b))
	if form.Get("Action") == "ListAccessKeys" {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(nil)), Request: r}, nil
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return e.next.RoundTrip(r)
}

// An empty success answer to ListAccessKeys is not "the user has no keys": Revoke must not report a
// key as revoked that it never saw, let alone deactivated.
func TestReviewRevokeEmptyListAnswer(t *testing.T) {
	f := newFixture(t)
	next := f.srv.AddKey(appUser)
	p := newProvider(awsiam.WithHTTPClient(&http.Client{Transport: emptyList{http.DefaultTransport}}))
	err := p.Revoke(t.Context(), f.revokeRequest(next), f.current.ID)
	if k, _ := f.srv.Key(f.current.ID); err == nil && k.Status == "Active" {
		t.Fatalf("Revoke succeeded on an empty ListAccessKeys answer; the retired key %s is still Active", k.ID)
	}
}
