package metrics_test

import (
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/metrics"
)

func TestParseConnectionString(t *testing.T) {
	for _, tc := range []struct {
		in                 string
		endpoint, audience string
	}{
		{"InstrumentationKey=" + testIKey + ";IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/;ApplicationId=abc",
			"https://westeurope-5.in.applicationinsights.azure.com", "https://monitor.azure.com"},
		{" instrumentationkey = " + strings.ToUpper(testIKey) + " ; INGESTIONENDPOINT=https://x.example/ ; ",
			"https://x.example", "https://monitor.azure.com"},
		{"InstrumentationKey=" + testIKey + ";IngestionEndpoint=https://usgovvirginia-1.in.applicationinsights.azure.us/;AADAudience=https://monitor.azure.us/",
			"https://usgovvirginia-1.in.applicationinsights.azure.us", "https://monitor.azure.us"},
		{"InstrumentationKey=" + testIKey + ";EndpointSuffix=applicationinsights.azure.cn;Location=chinaeast2",
			"https://chinaeast2.dc.applicationinsights.azure.cn", "https://monitor.azure.com"},
		{"InstrumentationKey=" + testIKey, metrics.DefaultIngestionEndpoint, "https://monitor.azure.com"},
		{"Authorization=ikey;InstrumentationKey=" + testIKey, metrics.DefaultIngestionEndpoint, "https://monitor.azure.com"},
	} {
		c, err := metrics.ParseConnectionString(tc.in)
		if err != nil {
			t.Errorf("ParseConnectionString(%q): %v", tc.in, err)
			continue
		}
		if !strings.EqualFold(c.InstrumentationKey, testIKey) || c.IngestionEndpoint != tc.endpoint || c.AADAudience != tc.audience {
			t.Errorf("ParseConnectionString(%q) = %+v, want endpoint %s audience %s", tc.in, c, tc.endpoint, tc.audience)
		}
		if c.TrackURL() != tc.endpoint+"/v2.1/track" || c.Scope() != tc.audience+"/.default" {
			t.Errorf("TrackURL %s Scope %s", c.TrackURL(), c.Scope())
		}
	}
}

func TestParseConnectionStringRejects(t *testing.T) {
	const key = "InstrumentationKey=" + testIKey
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"IngestionEndpoint=https://x.example/", "no InstrumentationKey"},
		{"InstrumentationKey=not-a-guid-" + testIKey, "not a GUID"},
		{"InstrumentationKey=0f0e0d0c0b0a4909880706050403020100ab", "not a GUID"},
		{key + ";garbage", "key=value"},
		{key + ";=x", "key=value"},
		{key + ";InstrumentationKey=" + testIKey, "twice"},
		{key + ";IngestionEndpoint=http://x.example/", "https"},
		{key + ";IngestionEndpoint=x.example", "https"},
		{key + ";IngestionEndpoint=https://user:pw@x.example/", "user information"},
		{key + ";IngestionEndpoint=https://x.example/?a=b", "query"},
		{key + ";AADAudience=monitor.azure.com", "AADAudience"},
		{key + ";Authorization=aad", "not supported"},
	} {
		_, err := metrics.ParseConnectionString(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConnectionString(%q) = %v, want an error saying %q", tc.in, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), testIKey) || strings.Contains(err.Error(), "pw@") {
			t.Errorf("error quotes the key or a password: %v", err)
		}
	}
}

func TestParseAuthenticationString(t *testing.T) {
	for _, tc := range []struct {
		in       string
		entra    bool
		clientID string
	}{
		{"", false, ""},
		{"Authorization=AAD", true, ""},
		{"authorization=aad; ClientId=11111111-2222-3333-4444-555555555555", true, "11111111-2222-3333-4444-555555555555"},
	} {
		a, err := metrics.ParseAuthenticationString(tc.in)
		if err != nil || a.Entra != tc.entra || a.ClientID != tc.clientID {
			t.Errorf("ParseAuthenticationString(%q) = %+v, %v", tc.in, a, err)
		}
	}
	for _, in := range []string{"Authorization=Bearer", "ClientId=x", "Authorization", "Authorization=AAD;Secret=x"} {
		if _, err := metrics.ParseAuthenticationString(in); err == nil {
			t.Errorf("ParseAuthenticationString(%q) accepted", in)
		}
	}
}
