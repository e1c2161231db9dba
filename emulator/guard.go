package emulator

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The development endpoints (the admin API /_emulator/... and the managed-identity endpoint
// /msi/token, on any listener) need no token: whoever reaches them can move the clock, script faults
// or mint tokens. They are guarded against two things a loopback listener alone does not stop:
//
//   - DNS rebinding: a web page on evil.example whose name resolves to 127.0.0.1 makes the browser send
//     requests with "Host: evil.example". Only loopback addresses, "localhost", "*.localhost" and
//     Config.TrustedHosts are accepted as Host.
//   - Other machines, when the emulator listens on a non-loopback address: only loopback callers and
//     Config.TrustedClients are accepted.
//
// Refusals are 403 with a message naming the setting to change.

// devGuard holds the parsed TrustedHosts and TrustedClients.
type devGuard struct {
	hosts     []string // lower-case, without port; "*.example.com" wildcards allowed
	anyClient bool
	clients   []netip.Prefix
}

// newDevGuard parses the trusted hosts and clients; it reports entries that do not parse.
func newDevGuard(hosts, clients []string) (*devGuard, error) {
	g := &devGuard{}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		g.hosts = append(g.hosts, normalizeHost(h))
	}
	for _, c := range clients {
		c = strings.TrimSpace(c)
		switch {
		case c == "":
		case c == "*":
			g.anyClient = true
		case strings.Contains(c, "/"):
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("trusted client %q is not an IP address or CIDR prefix", c)
			}
			g.clients = append(g.clients, p.Masked())
		default:
			a, err := netip.ParseAddr(c)
			if err != nil {
				return nil, fmt.Errorf("trusted client %q is not an IP address or CIDR prefix", c)
			}
			a = a.Unmap()
			g.clients = append(g.clients, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return g, nil
}

// normalizeHost lower-cases a Host value and strips its port, IPv6 brackets and a trailing dot.
func normalizeHost(hostport string) string {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// hostAllowed reports whether a request's Host names this machine or a trusted host.
func (g *devGuard) hostAllowed(hostport string) bool {
	h := normalizeHost(hostport)
	if h == "" {
		return false
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Unmap().IsLoopback() {
			return true
		}
	} else if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	for _, t := range g.hosts {
		if t == h {
			return true
		}
		if suffix, ok := strings.CutPrefix(t, "*"); ok && strings.HasPrefix(suffix, ".") && strings.HasSuffix(h, suffix) && len(h) > len(suffix) {
			return true
		}
	}
	return false
}

// clientAllowed reports whether the caller's address (RemoteAddr, ip:port) is loopback or trusted.
func (g *devGuard) clientAllowed(remoteAddr string) bool {
	if g.anyClient {
		return true
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	var a netip.Addr
	if err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(remoteAddr); err != nil {
		return false
	}
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, p := range g.clients {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// check returns "" when r may use a development endpoint, else the reason it may not.
func (g *devGuard) check(r *http.Request) string {
	if !g.hostAllowed(r.Host) {
		return fmt.Sprintf("The emulator's development endpoints (admin API and managed-identity endpoint) only answer requests addressed to "+
			"a loopback address, localhost or *.localhost; the Host %q is none of them (a web page using DNS rebinding looks like this). "+
			"Trust the host with Config.TrustedHosts or kvrotator emulator --trusted-host.", r.Host)
	}
	if !g.clientAllowed(r.RemoteAddr) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		return fmt.Sprintf("The emulator's development endpoints (admin API and managed-identity endpoint) only answer callers on loopback; "+
			"%s is not one. Trust it with Config.TrustedClients or kvrotator emulator --trusted-client.", host)
	}
	return ""
}

// allowDev answers 403 and returns false when r may not use a development endpoint.
func (s *Server) allowDev(w http.ResponseWriter, r *http.Request) bool {
	msg := s.guard.check(r)
	if msg == "" {
		return true
	}
	s.log.Warn("development endpoint request refused", "path", r.URL.Path, "host", r.Host, "remote", r.RemoteAddr)
	writeError(w, &kvError{Status: http.StatusForbidden, Code: "Forbidden", Message: msg})
	return false
}

// guarded wraps a handler that serves only development endpoints.
func (s *Server) guarded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.allowDev(w, r) {
			h.ServeHTTP(w, r)
		}
	})
}
