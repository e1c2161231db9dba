package redistest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/redistest"
)

func TestPlainServer(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	if s.TLS || s.CAFile != "" || !strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Fatalf("server %+v", s)
	}
	if got := s.Do(t, "ACL", "WHOAMI"); got != redistest.AdminUser {
		t.Fatalf("ACL WHOAMI = %v", got)
	}
	// The default user is off: a connection that does not log in can do nothing.
	c := s.Client("", "")
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("an unauthenticated PING succeeded: the default user is on")
	}
	// Without an ACL file, ACL SAVE fails as a production server without aclfile does.
	if _, err := s.DoErr("ACL", "SAVE"); err == nil || !strings.Contains(err.Error(), "not configured to use an ACL file") {
		t.Fatalf("ACL SAVE without an ACL file: %v", err)
	}
	s.Stop()
	if _, err := s.DoErr("PING"); err == nil {
		t.Fatal("the server answers after Stop")
	}
}

func TestTLSServer(t *testing.T) {
	t.Parallel()
	s := redistest.StartServer(t, &redistest.Options{TLS: true})
	if !s.TLS || s.CAFile == "" {
		t.Fatalf("server %+v", s)
	}
	s.Do(t, "PING")
	// Plain text is refused: the port speaks TLS only.
	conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, _ := conn.Read(buf); strings.HasPrefix(string(buf[:n]), "+PONG") {
		t.Fatal("the TLS port answered a plain-text PING")
	}
	// A client that trusts another CA fails the handshake.
	other := redistest.NewCA(t)
	_, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Addr, &tls.Config{RootCAs: other.Pool(), ServerName: "127.0.0.1"})
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("handshake trusting another CA: %v", err)
	}
}

func TestClientCertificates(t *testing.T) {
	t.Parallel()
	s := redistest.StartServer(t, &redistest.Options{ClientCerts: true})
	s.Do(t, "PING") // Do presents the client certificate
	// Without one, the server ends the handshake (TLS 1.3: at the first read).
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Addr, &tls.Config{RootCAs: s.CA.Pool(), ServerName: "127.0.0.1"})
	if err == nil {
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write([]byte("PING\r\n"))
		_, err = conn.Read(make([]byte, 16))
	}
	if err == nil || !strings.Contains(err.Error(), "remote error: tls:") {
		t.Fatalf("without a client certificate: %v", err)
	}
}

func TestACLFileSurvivesARestart(t *testing.T) {
	t.Parallel()
	s := redistest.StartServer(t, &redistest.Options{TLS: true, ACLFile: true})
	s.Do(t, "ACL", "SETUSER", "saved", "on", ">saved-pw", "+@all")
	s.Do(t, "ACL", "SAVE")
	s.Do(t, "ACL", "SETUSER", "unsaved", "on", ">unsaved-pw", "+@all")
	s.Restart(t)
	ctx := context.Background()
	for user, want := range map[string]bool{"saved": true, "unsaved": false} {
		c := s.Client(user, user+"-pw")
		err := c.Ping(ctx).Err()
		c.Close()
		if (err == nil) != want {
			t.Fatalf("%s after the restart: %v", user, err)
		}
	}
}
