// Package redistest starts a throwaway redis-server for a test (DESIGN.md, "Real parts in tests"), as
// internal/pgtest does for PostgreSQL. Each call writes a redis.conf into a fresh temporary directory
// and starts its own redis-server on a free loopback port, with the default user switched off (every
// connection must log in as an ACL user) and one admin user with every permission, and stops it and
// removes the directory when the test ends. Nothing is persisted but the ACL file (Options.ACLFile):
// no RDB, no AOF. Tests are hermetic, may run in parallel, and never touch the machine's own server.
//
// With Options.TLS the server speaks TLS only (port 0, tls-port), presenting a certificate for
// 127.0.0.1, ::1 and localhost signed by a throwaway CA made with crypto/x509; Server.CAFile is the CA's
// certificate, which clients trust as an operator's KVROTATOR_REDIS_CA_FILE would. With
// Options.ClientCerts the server also requires client certificates signed by that CA
// (tls-auth-clients yes, Redis's default); Server.ClientCertFile and ClientKeyFile are one.
//
// The server binary is KVROTATOR_REDIS_SERVER when set, else redis-server from /usr/bin (Debian's
// redis-server package) or PATH. When it is missing, Start skips the test, or fails it if
// KVROTATOR_REQUIRE_REDIS=1 (as scripts/test.sh sets after installing the package). Debian builds
// redis-server with TLS; a build without it fails TLS tests with the server's own message.
package redistest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	redigo "github.com/gomodule/redigo/redis"
)

// Environment variables read by Start.
const (
	// EnvRequire, when "1", turns a missing redis-server into a test failure instead of a skip.
	EnvRequire = "KVROTATOR_REQUIRE_REDIS"
	// EnvBin is the path of redis-server; it overrides the search.
	EnvBin = "KVROTATOR_REDIS_SERVER"
)

// AdminUser is the ACL user with every permission that every server has. Its password is random per
// server.
const AdminUser = "redistest_admin"

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	bindAttempts = 5
)

// Options adjust a server.
type Options struct {
	// TLS makes the server speak TLS only, with a certificate signed by CA. CA, CertHosts or ClientCerts
	// imply TLS.
	TLS bool
	// CA signs the server's certificate; nil makes a new CA for the server.
	CA *CA
	// CertHosts are the names in the server's certificate; empty is DefaultCertHosts. A certificate for
	// other names (db.example.com) fails verification of 127.0.0.1.
	CertHosts []string
	// ClientCerts makes the server require client certificates signed by the CA (tls-auth-clients yes).
	ClientCerts bool
	// ACLFile keeps the users in an ACL file (aclfile), so that ACL SAVE works and Restart brings back
	// what was saved; without it they are in redis.conf (user directives) and ACL SAVE fails.
	ACLFile bool
	// Settings are further redis.conf directives, name to value, e.g. {"maxclients": "4"}.
	Settings map[string]string
}

func (o *Options) tls() bool { return o.TLS || o.CA != nil || len(o.CertHosts) > 0 || o.ClientCerts }

// Server is one running redis-server.
type Server struct {
	// Addr is the loopback address it listens on, 127.0.0.1:<port>.
	Addr string
	// Host and Port are Addr's parts.
	Host string
	Port int
	// AdminUser and AdminPassword log in as the admin user (+@all ~* &*).
	AdminUser, AdminPassword string
	// Dir is the temporary directory holding redis.conf, the log and the ACL file.
	Dir string
	// TLS says the server speaks TLS only.
	TLS bool
	// CA signed the server's certificate when it speaks TLS, else nil; CAFile is its certificate.
	CA     *CA
	CAFile string
	// ClientCertFile and ClientKeyFile are a client certificate signed by CA (TLS servers only): what
	// clients of an Options.ClientCerts server present.
	ClientCertFile, ClientKeyFile string
	// ACLFilePath is the ACL file (Options.ACLFile), else "".
	ACLFilePath string

	t          testing.TB
	serverName string // the name clients verify: the host, or the certificate's first name
	bin        string
	confPath   string
	logPath    string
	mu         sync.Mutex
	stop       func()
}

// Start starts a plain-text server for the test with the default options. It is stopped and removed
// by t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartServer(t, nil)
}

// StartServer starts a server for the test; it is stopped and its directory removed by t.Cleanup.
func StartServer(t testing.TB, o *Options) *Server {
	t.Helper()
	if o == nil {
		o = &Options{}
	}
	bin, err := findBin()
	if err != nil {
		unavailable(t, err.Error())
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &Server{t: t, bin: bin, Host: "127.0.0.1", AdminUser: AdminUser, AdminPassword: randomHex(16), Dir: dir,
		confPath: filepath.Join(dir, "redis.conf"), logPath: filepath.Join(dir, "redis.log")}

	var tlsLines []string
	if o.tls() {
		if tlsLines, err = s.writeCerts(o); err != nil {
			t.Fatalf("redistest: %v", err)
		}
	}
	users := "user default off\n" +
		"user " + AdminUser + " on >" + s.AdminPassword + " ~* &* +@all\n"
	var aclLines []string
	if o.ACLFile {
		s.ACLFilePath = filepath.Join(dir, "users.acl")
		if err := os.WriteFile(s.ACLFilePath, []byte(users), 0o600); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		aclLines = []string{"aclfile " + quote(s.ACLFilePath)}
	} else {
		aclLines = strings.Split(strings.TrimSpace(users), "\n")
	}

	var lastErr error
	for range bindAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		lines := []string{
			"bind 127.0.0.1",
			"daemonize no",
			`save ""`,
			"appendonly no",
			"dir " + quote(dir),
			"logfile " + quote(s.logPath),
			"loglevel notice",
			"databases 4",
		}
		if o.tls() {
			lines = append(lines, "port 0", "tls-port "+strconv.Itoa(port))
			lines = append(lines, tlsLines...)
		} else {
			lines = append(lines, "port "+strconv.Itoa(port))
		}
		lines = append(lines, aclLines...)
		keys := make([]string, 0, len(o.Settings))
		for k := range o.Settings {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			lines = append(lines, k+" "+o.Settings[k])
		}
		if err := os.WriteFile(s.confPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.Port = port
		s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(port))
		err = s.start()
		if err == nil {
			t.Cleanup(func() {
				s.Stop()
				if t.Failed() {
					t.Logf("redistest: server log (last lines):\n%s", tail(s.Log(), 40))
				}
			})
			return s
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("redistest: %v\nserver log:\n%s", lastErr, tail(s.Log(), 40))
	return nil
}

// writeCerts writes the server's certificate and key (and a client certificate) signed by o.CA (a new
// CA when nil) and returns the redis.conf lines for them.
func (s *Server) writeCerts(o *Options) ([]string, error) {
	ca := o.CA
	if ca == nil {
		var err error
		if ca, err = newCA(s.Dir); err != nil {
			return nil, err
		}
	}
	certPEM, keyPEM, err := ca.Issue(o.CertHosts...)
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(s.Dir, "server.crt"), filepath.Join(s.Dir, "server.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	clientPEM, clientKeyPEM, err := ca.IssueClient("redistest-client")
	if err != nil {
		return nil, err
	}
	s.ClientCertFile, s.ClientKeyFile = filepath.Join(s.Dir, "client.crt"), filepath.Join(s.Dir, "client.key")
	if err := os.WriteFile(s.ClientCertFile, clientPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.ClientKeyFile, clientKeyPEM, 0o600); err != nil {
		return nil, err
	}
	s.TLS, s.CA, s.CAFile = true, ca, ca.CertFile
	hosts := o.CertHosts
	if len(hosts) == 0 {
		hosts = DefaultCertHosts
	}
	s.serverName = s.Host
	if !slices.Contains(hosts, s.Host) {
		s.serverName = hosts[0]
	}
	auth := "no"
	if o.ClientCerts {
		auth = "yes"
	}
	return []string{
		"tls-cert-file " + quote(certFile),
		"tls-key-file " + quote(keyFile),
		"tls-ca-cert-file " + quote(ca.CertFile),
		"tls-auth-clients " + auth,
	}, nil
}

// ClientTLS is the TLS configuration of a client that trusts the server's CA and presents the client
// certificate; nil for a plain-text server. It verifies the name 127.0.0.1, or the certificate's first
// name when Options.CertHosts leave 127.0.0.1 out.
func (s *Server) ClientTLS() *tls.Config {
	if !s.TLS {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(s.ClientCertFile, s.ClientKeyFile)
	if err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
	return &tls.Config{RootCAs: s.CA.Pool(), ServerName: s.serverName, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// Client returns a client of the server logging in as user with password (over TLS when the server
// speaks it; AUTH user password unless password is ""), making one connection, at its first command,
// and retrying nothing. The caller closes it.
func (s *Server) Client(user, password string) *Client {
	return &Client{s: s, user: user, password: password}
}

// Client is one connection to a Server, made at its first command. One goroutine uses it.
type Client struct {
	s              *Server
	user, password string
	conn           redigo.Conn
}

// Nil is the error of Get for a key that does not exist.
var Nil = redigo.ErrNil

// Cmd is a command's outcome.
type Cmd struct {
	val any
	err error
}

// Err is the command's error: a redigo.Error for an error reply, Nil for a missing key (Get).
func (c *Cmd) Err() error { return c.err }

// Result is the reply, bulk strings as strings, and the error.
func (c *Cmd) Result() (any, error) { return c.val, c.err }

// Do runs one command, connecting first when the client has no connection.
func (c *Client) Do(ctx context.Context, args ...any) *Cmd {
	if len(args) == 0 {
		return &Cmd{err: errors.New("redistest: no command")}
	}
	if c.conn == nil {
		opts := []redigo.DialOption{redigo.DialConnectTimeout(5 * time.Second), redigo.DialReadTimeout(10 * time.Second),
			redigo.DialWriteTimeout(10 * time.Second), redigo.DialUsername(c.user), redigo.DialPassword(c.password)}
		if c.s.TLS {
			opts = append(opts, redigo.DialUseTLS(true), redigo.DialTLSConfig(c.s.ClientTLS()))
		}
		conn, err := redigo.DialContext(ctx, "tcp", c.s.Addr, opts...)
		if err != nil {
			return &Cmd{err: err}
		}
		c.conn = conn
	}
	name, ok := args[0].(string)
	if !ok {
		return &Cmd{err: fmt.Errorf("redistest: command name %v is not a string", args[0])}
	}
	r, err := redigo.DoContext(c.conn, ctx, name, args[1:]...)
	return &Cmd{val: text(r), err: err}
}

// Get runs GET key; Err is Nil when the key does not exist.
func (c *Client) Get(ctx context.Context, key string) *Cmd {
	cmd := c.Do(ctx, "GET", key)
	if cmd.err == nil && cmd.val == nil {
		cmd.err = Nil
	}
	return cmd
}

// Ping runs PING.
func (c *Client) Ping(ctx context.Context) *Cmd { return c.Do(ctx, "PING") }

// Close closes the connection, if one was made.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// text is reply with every bulk string as a string.
func text(reply any) any {
	switch x := reply.(type) {
	case []byte:
		return string(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = text(e)
		}
		return out
	}
	return reply
}

// DoErr runs one command as the admin, on a new connection.
func (s *Server) DoErr(args ...any) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := s.Client(s.AdminUser, s.AdminPassword)
	defer c.Close()
	return c.Do(ctx, args...).Result()
}

// Do runs one command as the admin, on a new connection, and returns its reply; an error fails the
// test. A nil reply is returned as nil.
func (s *Server) Do(t testing.TB, args ...any) any {
	t.Helper()
	r, err := s.DoErr(args...)
	if err != nil {
		t.Fatalf("redistest: %v: %v", args, err)
	}
	return r
}

// Log returns what the server has logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// Stop stops the server now (SIGTERM: Redis closes every connection and exits; nothing is saved but
// what ACL SAVE wrote); later calls do nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Restart stops the server and starts it again on the same port with the same configuration: users come
// back from the ACL file (Options.ACLFile) or redis.conf, as after a reboot.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	for range 50 { // the port may linger for a moment
		if err = s.start(); err == nil || !errors.Is(err, errPortTaken) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("redistest: restart: %v\n%s", err, tail(s.Log(), 40))
	}
}

var errPortTaken = errors.New("the port was taken")

// start runs redis-server with s.confPath and waits until the admin can log in.
func (s *Server) start() error {
	logStart := len(s.Log())
	cmd := exec.Command(s.bin, s.confPath)
	cmd.Dir = s.Dir
	var out bytes.Buffer // start-up errors before the log file is open (a bad directive)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = sysProcAttr(0, 0, false, syscall.SIGKILL)
	// The parent-death signal follows the thread that started the child: start it from a thread that
	// is not about to go away.
	runtime.LockOSThread()
	err := cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		select {
		case <-exited:
			log := s.Log()[min(logStart, len(s.Log())):] + out.String()
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("redis-server on port %d: %w", s.Port, errPortTaken)
			}
			return fmt.Errorf("redis-server exited before accepting connections (%v)\n%s", waitErr, tail(log, 20))
		case <-ctx.Done():
			stop()
			return fmt.Errorf("redis-server did not accept connections within %s", startTimeout)
		case <-time.After(30 * time.Millisecond):
		}
		if _, err := s.DoErr("PING"); err == nil {
			break
		}
	}
	s.mu.Lock()
	s.stop = stop
	s.mu.Unlock()
	return nil
}

// findBin finds redis-server.
func findBin() (string, error) {
	if p := os.Getenv(EnvBin); p != "" {
		if !executable(p) {
			return "", fmt.Errorf("%s=%s is not an executable file", EnvBin, p)
		}
		return p, nil
	}
	for _, p := range []string{"/usr/bin/redis-server"} {
		if executable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	return "", errors.New("no redis-server in /usr/bin or on PATH")
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// quote quotes a redis.conf argument (sdssplitargs: double quotes with backslash escapes).
func quote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	msg := "redistest: redis-server is not available (" + why + "). Install it with scripts/test.sh, or " +
		"apt-get install redis-server (the tests start their own servers; the system service is not needed)"
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
