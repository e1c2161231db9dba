// Package pgtest starts a throwaway PostgreSQL server for a test (DESIGN.md, "Real parts in tests").
// Each call runs initdb into a fresh temporary directory and starts its own postgres on a free loopback
// port, with SCRAM-SHA-256 password authentication for every connection (pg_hba.conf names no other
// method), and stops and removes it when the test ends. Tests are hermetic, may run in parallel, and
// never touch the machine's own cluster.
//
// With Options.TLS the server speaks TLS only, presenting a certificate for 127.0.0.1, ::1 and localhost
// signed by a throwaway CA (CA, made with crypto/x509); Server.CAFile is the CA's certificate, so
// clients connect with sslmode=verify-full as they would to a production server.
//
// The server binaries come from KVROTATOR_POSTGRES_BIN when set (a directory holding initdb and
// postgres), else from the newest /usr/lib/postgresql/*/bin (Debian's postgresql package), else from
// PATH. When they are missing, Start skips the test, or fails it if KVROTATOR_REQUIRE_POSTGRES=1 (as
// scripts/test.sh sets after installing the package).
//
// PostgreSQL refuses to run as root. When the test runs as root (CI), initdb and postgres run as the
// postgres OS user that the Debian package creates, and the cluster's directory is handed to that user.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
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

	"github.com/jackc/pgx/v5"
)

// Environment variables read by Start.
const (
	// EnvRequire, when "1", turns missing PostgreSQL binaries into a test failure instead of a skip.
	EnvRequire = "KVROTATOR_REQUIRE_POSTGRES"
	// EnvBin is a directory holding initdb and postgres; it overrides the search.
	EnvBin = "KVROTATOR_POSTGRES_BIN"
)

// AdminUser is the superuser every server is initialised with. Its password is random per server.
const AdminUser = "pgtest_admin"

// Database is the database every server has (initdb's default).
const Database = "postgres"

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second
	bindAttempts = 5
)

// Options adjust a server.
type Options struct {
	// Settings are server settings passed as postgres -c name=value, e.g. {"log_statement": "all"}.
	// They override the defaults Start uses (fsync=off and other speed-ups for throwaway data).
	Settings map[string]string
	// TLS makes the server accept TLS connections only (pg_hba.conf has hostssl lines and no host
	// lines), with a certificate signed by CA; Server.CAFile is the CA's certificate. CA or CertHosts
	// imply TLS.
	TLS bool
	// CA signs the server's certificate; nil makes a new CA for the server. Servers given the same CA
	// are trusted by the same clients.
	CA *CA
	// CertHosts are the names in the server's certificate (IP addresses and DNS names); empty is
	// DefaultCertHosts. A certificate for other names (say db.example.com) makes verify-full to
	// 127.0.0.1 fail while verify-ca succeeds.
	CertHosts []string
}

func (o *Options) tls() bool { return o.TLS || o.CA != nil || len(o.CertHosts) > 0 }

// Server is one running PostgreSQL server.
type Server struct {
	// Addr is the loopback address it listens on, 127.0.0.1:<port>.
	Addr string
	// Host and Port are Addr's parts.
	Host string
	Port int
	// AdminUser and AdminPassword log in as the superuser (over TCP, SCRAM-SHA-256).
	AdminUser, AdminPassword string
	// Dir is the temporary directory holding the data directory, the socket and the log.
	Dir string
	// CA signed the server's certificate when it speaks TLS (Options.TLS), else nil.
	CA *CA
	// CAFile is CA.CertFile, what clients give as sslrootcert; "" without TLS.
	CAFile string

	t       testing.TB
	logPath string
	// sslMode is what ConnString asks for: disable, verify-full, or verify-ca when the certificate
	// does not name Host.
	sslMode string
	mu      sync.Mutex
	stop    func()
	hbaMu   sync.Mutex // serialises PrependHBA's read-modify-write
}

// Start starts a server for the test with the default options and returns its address
// (127.0.0.1:<port>) and the superuser's name and password. It is stopped and removed by t.Cleanup.
func Start(t testing.TB) (addr string, adminUser, adminPassword string) {
	t.Helper()
	s := StartServer(t, nil)
	return s.Addr, s.AdminUser, s.AdminPassword
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
	runAs, err := osUser()
	if err != nil {
		unavailable(t, err.Error())
	}

	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := runAs.chown(dir); err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	s := &Server{t: t, Host: "127.0.0.1", AdminUser: AdminUser, Dir: dir, logPath: filepath.Join(dir, "server.log"), sslMode: "disable"}
	s.AdminPassword = randomHex(16)
	data := filepath.Join(dir, "data")
	if err := s.initdb(bin, runAs, data); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := writeHBA(runAs, data, o.tls()); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": dir,
		"fsync":                   "off",
		"full_page_writes":        "off",
		"synchronous_commit":      "off",
		"max_connections":         "40",
		"shared_buffers":          "16MB",
		"log_destination":         "stderr",
		"logging_collector":       "off",
		"password_encryption":     "scram-sha-256",
	}
	if o.tls() {
		if err := s.writeCert(runAs, data, o); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		settings["ssl"] = "on"
	}
	for k, v := range o.Settings {
		settings[k] = v
	}

	var lastErr error
	for range bindAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		err = s.start(bin, runAs, data, port, settings)
		if err == nil {
			return s
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("pgtest: %v\nserver log:\n%s", lastErr, tail(s.Log(), 60))
	return nil
}

// Log returns what the server has logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// ConnString is a keyword/value connection string for user and password to database on the server:
// without TLS, or, when the server speaks TLS, with sslmode=verify-full and sslrootcert=CAFile
// (verify-ca when Options.CertHosts leave out 127.0.0.1).
func (s *Server) ConnString(user, password, database string) string {
	cs := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=%s connect_timeout=10",
		s.Host, s.Port, quote(user), quote(password), quote(database), s.sslMode)
	if s.CAFile != "" {
		cs += " sslrootcert=" + quote(s.CAFile)
	}
	return cs
}

// PrependHBA puts lines at the top of the server's pg_hba.conf (where they win over pgtest's own
// SCRAM lines), reloads the configuration and returns once new connections follow it. Tests use it to
// make the server ask a login for a weaker method, e.g. "host all app_b 127.0.0.1/32 password".
func (s *Server) PrependHBA(t testing.TB, lines ...string) {
	t.Helper()
	runAs, err := osUser()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s.hbaMu.Lock()
	defer s.hbaMu.Unlock()
	hba := filepath.Join(s.Dir, "data", "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := writeOwned(runAs, hba, []byte(strings.Join(lines, "\n")+"\n"+string(old))); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s.Reload(t)
}

// Reload makes the server reread its configuration files and waits until new connections see them
// (pg_conf_load_time changes in a new session once the postmaster has reloaded).
func (s *Server) Reload(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	loadTime := func() time.Time {
		c, err := pgx.Connect(ctx, s.ConnString(s.AdminUser, s.AdminPassword, Database))
		if err != nil {
			t.Fatalf("pgtest: reload: %v", err)
		}
		defer c.Close(ctx)
		var at time.Time
		if err := c.QueryRow(ctx, "SELECT pg_conf_load_time()").Scan(&at); err != nil {
			t.Fatalf("pgtest: reload: %v", err)
		}
		return at
	}
	before := loadTime()
	c, err := pgx.Connect(ctx, s.ConnString(s.AdminUser, s.AdminPassword, Database))
	if err != nil {
		t.Fatalf("pgtest: reload: %v", err)
	}
	var ok bool
	err = c.QueryRow(ctx, "SELECT pg_reload_conf()").Scan(&ok)
	c.Close(ctx)
	if err != nil || !ok {
		t.Fatalf("pgtest: pg_reload_conf: %v", err)
	}
	for loadTime().Equal(before) {
		select {
		case <-ctx.Done():
			t.Fatal("pgtest: the server did not reload its configuration within 30s")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if strings.Contains(s.Log(), "pg_hba.conf was not reloaded") {
		t.Fatalf("pgtest: the server refused the new pg_hba.conf:\n%s", tail(s.Log(), 20))
	}
}

// Admin connects as the superuser to the default database; the connection is closed by t.Cleanup.
func (s *Server) Admin(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.ConnString(s.AdminUser, s.AdminPassword, Database))
	if err != nil {
		t.Fatalf("pgtest: connect as %s: %v", s.AdminUser, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// Stop stops the server now (a fast shutdown); later calls do nothing. Tests use it to take the
// server down while the rest of the test goes on.
func (s *Server) Stop() {
	s.mu.Lock()
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (s *Server) initdb(bin string, runAs *account, data string) error {
	pwfile := filepath.Join(s.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.AdminPassword+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	if err := runAs.chown(pwfile); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "--auth=scram-sha-256", "--pwfile="+pwfile,
		"-U", s.AdminUser, "--no-sync", "--no-instructions", "--encoding=UTF8", "--locale=C")
	cmd.Dir = s.Dir
	cmd.Env = childEnv()
	// initdb only sets a flag on SIGQUIT and goes on; its data is thrown away anyway.
	cmd.SysProcAttr = runAs.procAttr(syscall.SIGKILL)
	runtime.LockOSThread()
	out, err := cmd.CombinedOutput()
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return nil
}

// writeCert installs a server certificate for o.CertHosts signed by o.CA (a new CA when nil).
func (s *Server) writeCert(runAs *account, data string, o *Options) error {
	ca := o.CA
	if ca == nil {
		var err error
		if ca, err = newCA(s.Dir); err != nil {
			return err
		}
	}
	hosts := o.CertHosts
	if len(hosts) == 0 {
		hosts = DefaultCertHosts
	}
	certPEM, keyPEM, err := ca.Issue(hosts...)
	if err != nil {
		return err
	}
	// PostgreSQL refuses a key file that others may read.
	if err := writeOwned(runAs, filepath.Join(data, "server.crt"), certPEM); err != nil {
		return err
	}
	if err := writeOwned(runAs, filepath.Join(data, "server.key"), keyPEM); err != nil {
		return err
	}
	s.CA, s.CAFile = ca, ca.CertFile
	s.sslMode = "verify-ca"
	if slices.Contains(hosts, s.Host) {
		s.sslMode = "verify-full"
	}
	return nil
}

// writeHBA replaces initdb's pg_hba.conf: SCRAM-SHA-256 for every connection, over the socket and
// over loopback TCP (TLS only when tlsOnly).
func writeHBA(runAs *account, data string, tlsOnly bool) error {
	host := "host     "
	if tlsOnly {
		host = "hostssl  "
	}
	conf := "# pgtest: SCRAM-SHA-256 only" + map[bool]string{true: ", TLS only over TCP", false: ""}[tlsOnly] + "\n" +
		"local    all all              scram-sha-256\n" +
		host + "all all 127.0.0.1/32 scram-sha-256\n" +
		host + "all all ::1/128      scram-sha-256\n"
	return writeOwned(runAs, filepath.Join(data, "pg_hba.conf"), []byte(conf))
}

// writeOwned writes a file only its owner may read, owned by the server's account.
func writeOwned(runAs *account, path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil { // WriteFile keeps an existing file's mode
		return err
	}
	return runAs.chown(path)
}

var errPortTaken = errors.New("the port was taken")

// start runs postgres on port and waits until it accepts a login.
func (s *Server) start(bin string, runAs *account, data string, port int, settings map[string]string) error {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := []string{"-D", data, "-p", strconv.Itoa(port)}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Dir = s.Dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// SIGQUIT is PostgreSQL's immediate shutdown: the postmaster stops its backends and exits.
	cmd.SysProcAttr = runAs.procAttr(syscall.SIGQUIT)

	// The parent-death signal follows the thread that started the child: start it from a thread that
	// is not about to go away.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		// SIGINT is PostgreSQL's fast shutdown: open sessions are ended, not waited for.
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	s.Port = port
	s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		select {
		case <-exited:
			if strings.Contains(s.Log(), "could not bind") || strings.Contains(s.Log(), "could not create any TCP/IP sockets") {
				return fmt.Errorf("postgres on port %d: %w", port, errPortTaken)
			}
			return fmt.Errorf("postgres exited before accepting connections (%v)", waitErr)
		case <-ctx.Done():
			stop()
			return fmt.Errorf("postgres did not accept connections within %s", startTimeout)
		case <-time.After(50 * time.Millisecond):
		}
		if s.ping(ctx) == nil {
			break
		}
	}
	s.mu.Lock()
	s.stop = stop
	s.mu.Unlock()
	s.t.Cleanup(func() {
		s.Stop()
		if s.t.Failed() {
			s.t.Logf("pgtest: server log (last lines):\n%s", tail(s.Log(), 60))
		}
	})
	return nil
}

func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.ConnString(s.AdminUser, s.AdminPassword, Database))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "SELECT 1")
	return err
}

// findBin finds the directory with initdb and postgres.
func findBin() (string, error) {
	if dir := os.Getenv(EnvBin); dir != "" {
		if !hasServer(dir) {
			return "", fmt.Errorf("%s=%s has no initdb and postgres", EnvBin, dir)
		}
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first: 9.6 < 10 < 15 < 17.
	slices.SortFunc(dirs, func(a, b string) int { return slices.Compare(versionOf(b), versionOf(a)) })
	for _, d := range dirs {
		if hasServer(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if p, err = filepath.EvalSymlinks(p); err == nil && hasServer(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	return "", errors.New("no initdb and postgres under /usr/lib/postgresql/*/bin or on PATH")
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// versionOf reads the version directory of /usr/lib/postgresql/<version>/bin as numbers.
func versionOf(binDir string) []int {
	var v []int
	for _, part := range strings.Split(filepath.Base(filepath.Dir(binDir)), ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			n = -1
		}
		v = append(v, n)
	}
	return v
}

// account is the OS user the server runs as.
type account struct {
	uid, gid uint32
	other    bool // a different user than the test's: chown and switch
}

// osUser picks the account: the test's own, or postgres when the test runs as root.
func osUser() (*account, error) {
	if os.Geteuid() != 0 {
		return &account{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root, and PostgreSQL refuses to run as root, but there is no postgres OS user to run it as (the postgresql Debian package creates it)")
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("the postgres OS user has a non-numeric uid or gid (%s:%s)", u.Uid, u.Gid)
	}
	return &account{uid: uint32(uid), gid: uint32(gid), other: true}, nil
}

func (a *account) chown(path string) error {
	if !a.other {
		return nil
	}
	return os.Lchown(path, int(a.uid), int(a.gid))
}

// procAttr runs a child as the account; onDeath is what the child gets if the test binary dies.
func (a *account) procAttr(onDeath syscall.Signal) *syscall.SysProcAttr {
	return sysProcAttr(a.uid, a.gid, a.other, onDeath)
}

// childEnv is the environment of initdb and postgres: the test's, minus libpq's PG* variables (which
// would change what initdb does) and with a locale that exists everywhere.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LANG=C", "LC_ALL=C")
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

// quote quotes a keyword/value connection-string value.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func tail(s string, lines int) string {
	all := bytes.Split([]byte(strings.TrimRight(s, "\n")), []byte("\n"))
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return string(bytes.Join(all, []byte("\n")))
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	msg := "pgtest: PostgreSQL is not available (" + why + "). Install it with scripts/test.sh, or " +
		"apt-get install postgresql (the tests start their own servers; the system service is not needed)"
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
