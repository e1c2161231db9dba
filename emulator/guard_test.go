package emulator_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/emulator"
)

// devGet sends GET url with the given Host header ("" keeps the URL's) and extra headers.
func devGet(t *testing.T, client *http.Client, rawURL, host string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", rawURL, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestEmulatorDevEndpointsCheckHost: the admin API and the managed-identity endpoint refuse requests
// whose Host is not this machine (DNS rebinding from a web page), on every listener.
func TestEmulatorDevEndpointsCheckHost(t *testing.T) {
	srv := start(t, func(c *emulator.Config) {
		c.Vaults = append(c.Vaults, emulator.VaultConfig{Name: "port-vault", Addr: "127.0.0.1:0"})
		c.TrustedHosts = []string{"emu.example:8443", "*.corp.example"}
	})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL(), "https://"))
	hc := srv.HTTPClient()
	plain := &http.Client{}
	msi := srv.IdentityEndpoint() + "?api-version=2019-08-01&resource=https://vault.azure.net"
	msiHeader := map[string]string{"X-IDENTITY-HEADER": srv.IdentityHeader()}
	httpsMSI := srv.URL() + "/msi/token?api-version=2019-08-01&resource=https://vault.azure.net"

	for _, host := range []string{"", "127.0.0.1:" + port, "localhost:" + port, "myvault.localhost:" + port, "LOCALHOST.", "[::1]:" + port, "127.0.0.2",
		"emu.example", "build.corp.example:1234"} {
		if st, body := devGet(t, hc, srv.URL()+"/_emulator/health", host, nil); st != 200 {
			t.Errorf("admin with Host %q: %d %s", host, st, body)
		}
		if st, body := devGet(t, plain, msi, host, msiHeader); st != 200 || !strings.Contains(body, "access_token") {
			t.Errorf("managed identity with Host %q: %d", host, st)
		}
	}
	for _, host := range []string{"evil.example", "evil.example:" + port, "127.0.0.1.evil.example", "localhost.evil.example", "corp.example", "10.0.0.1", "emu.example.evil"} {
		for name, try := range map[string]func() (int, string){
			"admin": func() (int, string) { return devGet(t, hc, srv.URL()+"/_emulator/clock", host, nil) },
			"admin, own port": func() (int, string) {
				return devGet(t, hc, srv.VaultAddrURL("port-vault")+"/_emulator/health", host, nil)
			},
			"managed identity":   func() (int, string) { return devGet(t, plain, msi, host, msiHeader) },
			"identity via HTTPS": func() (int, string) { return devGet(t, hc, httpsMSI, host, msiHeader) },
		} {
			st, body := try()
			if st != http.StatusForbidden || !strings.Contains(body, "Host") || !strings.Contains(body, "--trusted-host") {
				t.Errorf("%s with Host %q: %d %s", name, host, st, body)
			}
			if strings.Contains(body, "access_token") {
				t.Fatalf("%s with Host %q issued a token", name, host)
			}
		}
	}
	// POST too: a rebinding page cannot move the clock.
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/_emulator/clock", strings.NewReader(`{"advance":"720h"}`))
	req.Host = "evil.example"
	before := srv.Now()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || srv.Now().Sub(before) > time.Hour {
		t.Fatalf("POST clock with a foreign Host: %d, clock moved to %v", resp.StatusCode, srv.Now())
	}
	// The vault API is not a development endpoint: it has tokens, and other hosts may reach it.
	if st, _ := devGet(t, hc, srv.VaultURL("myvault")+"/secrets?api-version=7.5", "", nil); st != http.StatusUnauthorized {
		t.Fatalf("vault API: %d", st)
	}
}

// TestEmulatorDevEndpointsCheckCaller: with the emulator on every interface, a caller on a
// non-loopback address is refused unless trusted.
func TestEmulatorDevEndpointsCheckCaller(t *testing.T) {
	ip := nonLoopbackIPv4(t)
	for _, tc := range []struct {
		trusted []string
		want    int
	}{
		{nil, http.StatusForbidden},
		{[]string{"192.0.2.1"}, http.StatusForbidden},
		{[]string{ip}, http.StatusOK},
		{[]string{ip + "/32", "10.0.0.0/8"}, http.StatusOK},
		{[]string{"*"}, http.StatusOK},
	} {
		srv := start(t, func(c *emulator.Config) {
			c.Addr = "0.0.0.0:0"
			c.IdentityAddr = "0.0.0.0:0"
			c.TrustedClients = tc.trusted
			c.ExtraHosts = []string{ip}
		})
		u, _ := url.Parse(srv.URL())
		_, port, _ := net.SplitHostPort(u.Host)
		st, body := devGet(t, srv.HTTPClient(), "https://"+net.JoinHostPort(ip, port)+"/_emulator/health", "localhost", nil)
		if st != tc.want {
			t.Errorf("trusted %v, admin from %s: %d %s", tc.trusted, ip, st, body)
		}
		if st == http.StatusForbidden && (!strings.Contains(body, ip) || !strings.Contains(body, "--trusted-client")) {
			t.Errorf("refusal does not explain itself: %s", body)
		}
		mu, _ := url.Parse(srv.IdentityEndpoint())
		_, idPort, _ := net.SplitHostPort(mu.Host)
		st, _ = devGet(t, &http.Client{}, "http://"+net.JoinHostPort(ip, idPort)+"/msi/token?api-version=2019-08-01&resource=https://vault.azure.net", "localhost",
			map[string]string{"X-IDENTITY-HEADER": srv.IdentityHeader()})
		if st != tc.want {
			t.Errorf("trusted %v, managed identity from %s: %d", tc.trusted, ip, st)
		}
		// Loopback callers are always fine.
		if st, _ := devGet(t, srv.HTTPClient(), srv.URL()+"/_emulator/health", "", nil); st != http.StatusOK {
			t.Errorf("loopback caller: %d", st)
		}
	}
}

// nonLoopbackIPv4 is an address of this machine other than loopback; the test is skipped without one.
func nonLoopbackIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address on this machine")
	return ""
}

// TestEmulatorIdentityHeaderRandom: without configuration, each emulator makes its own random
// IDENTITY_HEADER; a configured one is used as given.
func TestEmulatorIdentityHeaderRandom(t *testing.T) {
	a, b := start(t, nil), start(t, nil)
	for _, h := range []string{a.IdentityHeader(), b.IdentityHeader()} {
		if len(h) < 20 || h == "kvrotator-emulator" {
			t.Fatalf("identity header %q is not a random secret", h)
		}
	}
	if a.IdentityHeader() == b.IdentityHeader() {
		t.Fatal("two emulators share an identity header")
	}
	// The other emulator's header gets no token here.
	st, _ := devGet(t, &http.Client{}, a.IdentityEndpoint()+"?api-version=2019-08-01&resource=https://vault.azure.net", "",
		map[string]string{"X-IDENTITY-HEADER": b.IdentityHeader()})
	if st != http.StatusUnauthorized {
		t.Fatalf("another emulator's header: %d", st)
	}
	c := start(t, func(c *emulator.Config) { c.IdentityHeader = "given-header" })
	if c.IdentityHeader() != "given-header" {
		t.Fatalf("configured header replaced by %q", c.IdentityHeader())
	}
	if _, err := emulator.New(emulator.Config{Vaults: []emulator.VaultConfig{{Name: "myvault"}}, TrustedClients: []string{"not-an-ip"}}); err == nil ||
		!strings.Contains(err.Error(), "not-an-ip") {
		t.Fatalf("bad trusted client: %v", err)
	}
}
