// Package mysqltest starts a throwaway MariaDB server for a test (DESIGN.md, "Real parts in tests"), as
// internal/pgtest does for PostgreSQL. Each call runs mariadb-install-db into a fresh temporary
// directory and starts its own mariadbd on a free loopback port, and stops it and removes the directory
// when the test ends. Tests are hermetic, may run in parallel, and never touch the machine's own server.
//
// By default the server speaks TLS only over TCP (require_secure_transport), presenting a certificate for
// 127.0.0.1, ::1 and localhost signed by a throwaway CA (CA, made with crypto/x509); Server.CAFile is the
// CA's certificate, so clients verify the server as they would a production one. Options.NoTLS starts a
// server without TLS (to prove that clients refuse it).
//
// Every server has one administrator, AdminUser, with a random password and every privilege, created by
// an init file before the server listens; the root account is reachable only through the Unix socket by
// the OS user root (unix_socket authentication), so no other process on the machine can log in without a
// password while the test runs. The ed25519 authentication plugin is loaded when the package ships it.
//
// The server binaries come from KVROTATOR_MARIADB_BIN when set (a directory holding mariadbd and
// mariadb-install-db), else from /usr/sbin and /usr/bin (Debian's mariadb-server package), else from
// PATH. When they are missing, StartServer skips the test, or fails it if KVROTATOR_REQUIRE_MARIADB=1
// (as scripts/test.sh sets after installing the package).
//
// MariaDB refuses to run as root. When the test runs as root (CI), mariadb-install-db and mariadbd run as
// the mysql OS user that the Debian package creates, and the server's directory is handed to that user.
package mysqltest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
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

	"github.com/go-sql-driver/mysql"
)

// Environment variables read by StartServer.
const (
	// EnvRequire, when "1", turns missing MariaDB binaries into a test failure instead of a skip.
	EnvRequire = "KVROTATOR_REQUIRE_MARIADB"
	// EnvBin is a directory holding mariadbd and mariadb-install-db; it overrides the search.
	EnvBin = "KVROTATOR_MARIADB_BIN"
)

// AdminUser is the administrator every server is initialised with ('mysqltest_admin'@'%', every
// privilege WITH GRANT OPTION). Its password is random per server.
const AdminUser = "mysqltest_admin"

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 20 * time.Second
	bindAttempts = 5
)

// Options adjust a server.
type Options struct {
	// Settings are server options passed as --name=value, e.g. {"general_log": "ON"}. They override
	// the defaults StartServer uses (small InnoDB files and other speed-ups for throwaway data). Log
	// files named by general_log_file, slow_query_log_file or log_bin are placed in Dir unless absolute.
	Settings map[string]string
	// NoTLS starts the server without TLS: no certificate, plain-text TCP.
	NoTLS bool
	// CA signs the server's certificate; nil makes a new CA for the server. Servers given the same CA
	// are trusted by the same clients.
	CA *CA
	// CertHosts are the names in the server's certificate (IP addresses and DNS names); empty is
	// DefaultCertHosts. A certificate for other names (say db.example.com) fails full verification at
	// 127.0.0.1 while chain-only verification succeeds.
	CertHosts []string
}

// Server is one running MariaDB server.
type Server struct {
	// Addr is the loopback address it listens on, 127.0.0.1:<port>.
	Addr string
	// Host and Port are Addr's parts.
	Host string
	Port int
	// AdminUser and AdminPassword log in as the administrator (over TCP, TLS unless NoTLS).
	AdminUser, AdminPassword string
	// Dir is the temporary directory holding the data directory, the socket and the logs.
	Dir string
	// CA signed the server's certificate; nil with NoTLS.
	CA *CA
	// CAFile is CA.CertFile, what clients trust; "" with NoTLS.
	CAFile string
	// Version is what SELECT VERSION() answered.
	Version string

	t        testing.TB
	errorLog string
	// fullVerify says the certificate names Host, so clients can check the name as well as the chain.
	fullVerify bool
	mu         sync.Mutex
	stop       func()
}

// StartServer starts a server for the test; it is stopped and its directory removed by t.Cleanup.
func StartServer(t testing.TB, o *Options) *Server {
	t.Helper()
	if o == nil {
		o = &Options{}
	}
	bins, err := findBins()
	if err != nil {
		unavailable(t, err.Error())
	}
	runAs, err := osUser()
	if err != nil {
		unavailable(t, err.Error())
	}

	dir, err := os.MkdirTemp("", "mysqltest-")
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := runAs.chown(dir); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	s := &Server{t: t, Host: "127.0.0.1", AdminUser: AdminUser, AdminPassword: randomHex(16), Dir: dir,
		errorLog: filepath.Join(dir, "error.log")}

	// Temporary tables go to the server's own directory: servers bootstrapping side by side in /tmp
	// have been seen to lose each other's (ERROR 1051 Unknown table 'mysql.tmp_user_sys').
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	if err := runAs.chown(tmp); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	// Options both mariadb-install-db and mariadbd must agree on (the InnoDB files' sizes).
	common := map[string]string{
		"tmpdir":                  tmp,
		"innodb-log-file-size":    "8M",
		"innodb-buffer-pool-size": "16M",
		"innodb-data-file-path":   "ibdata1:10M:autoextend",
	}
	if err := s.installDB(bins, runAs, common); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	settings := map[string]string{
		"bind-address":                   s.Host,
		"socket":                         filepath.Join(dir, "mysqld.sock"),
		"pid-file":                       filepath.Join(dir, "mysqld.pid"),
		"log-error":                      s.errorLog,
		"skip-name-resolve":              "ON",
		"max-connections":                "200",
		"innodb-flush-log-at-trx-commit": "0",
		"innodb-doublewrite":             "OFF",
		"skip-log-bin":                   "",
		"performance-schema":             "OFF",
		"character-set-server":           "utf8mb4",
		"collation-server":               "utf8mb4_general_ci",
		"init-file":                      filepath.Join(dir, "init.sql"),
	}
	merge(settings, common)
	if _, err := os.Stat(filepath.Join(bins.pluginDir, "auth_ed25519.so")); err == nil {
		settings["plugin-load-add"] = "auth_ed25519"
	}
	if !o.NoTLS {
		if err := s.writeCert(runAs, o); err != nil {
			t.Fatalf("mysqltest: %v", err)
		}
		settings["ssl-cert"] = filepath.Join(dir, "server.crt")
		settings["ssl-key"] = filepath.Join(dir, "server.key")
		settings["require-secure-transport"] = "ON"
		settings["tls-version"] = "TLSv1.2,TLSv1.3"
	}
	for k, v := range o.Settings {
		k = strings.ReplaceAll(k, "_", "-")
		if (k == "general-log-file" || k == "slow-query-log-file" || k == "log-bin") && v != "" && !filepath.IsAbs(v) {
			v = filepath.Join(dir, v)
		}
		if k == "log-bin" {
			delete(settings, "skip-log-bin")
			if _, ok := o.Settings["server_id"]; !ok {
				settings["server-id"] = "1"
			}
		}
		settings[k] = v
	}
	if err := s.writeInit(runAs); err != nil {
		t.Fatalf("mysqltest: %v", err)
	}

	var lastErr error
	for range bindAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("mysqltest: %v", err)
		}
		err = s.start(bins, runAs, port, settings)
		if err == nil {
			_ = os.Remove(filepath.Join(dir, "init.sql")) // it holds the admin's password
			return s
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("mysqltest: %v\nerror log:\n%s", lastErr, tail(s.Log(), 60))
	return nil
}

func merge(dst, src map[string]string) {
	for k, v := range src {
		dst[k] = v
	}
}

// Log returns what the server has written to its error log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.errorLog)
	return string(b)
}

// Logs returns everything the server has logged so far, as raw bytes, one file after another: every file
// in Dir but the certificate, key and pid files: the error log, and the general query log, the slow query
// log and the binary logs (and their index) when Options.Settings turned them on (binary logs hold
// statements as written). Tests search it for what must never be logged.
func (s *Server) Logs() string {
	var b strings.Builder
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || n == "init.sql" || !e.Type().IsRegular() {
			continue
		}
		if ext := filepath.Ext(n); ext != ".crt" && ext != ".key" && ext != ".pid" {
			data, _ := os.ReadFile(filepath.Join(s.Dir, n))
			b.WriteString("==> " + n + "\n")
			b.Write(data)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// Config is a driver configuration for user and password (and database, "" for none) on the server:
// TLS verified against CAFile (names checked when the certificate names Host), or plain text with NoTLS.
func (s *Server) Config(user, password, database string) *mysql.Config {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.DBName = user, password, database
	c.Net, c.Addr = "tcp", s.Addr
	c.Timeout = 10 * time.Second
	c.Logger = &mysql.NopLogger{}
	if s.CA != nil {
		c.TLS = &tls.Config{RootCAs: s.CA.Pool(), ServerName: s.Host, MinVersion: tls.VersionTLS12}
		if !s.fullVerify {
			pool := s.CA.Pool()
			c.TLS = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12,
				VerifyConnection: func(cs tls.ConnectionState) error {
					if len(cs.PeerCertificates) == 0 {
						return errors.New("no certificate")
					}
					_, err := verifyChain(cs, pool)
					return err
				}}
		}
	}
	return c
}

// Open connects as user with password (to database, "" for none); the pool is closed by t.Cleanup.
func (s *Server) Open(t testing.TB, user, password, database string) *sql.DB {
	t.Helper()
	c, err := mysql.NewConnector(s.Config(user, password, database))
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Admin is a connection pool logged in as the administrator; it is closed by t.Cleanup.
func (s *Server) Admin(t testing.TB) *sql.DB {
	t.Helper()
	return s.Open(t, s.AdminUser, s.AdminPassword, "")
}

// Exec runs statements as the administrator, failing the test on the first error.
func (s *Server) Exec(t testing.TB, statements ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := mysql.NewConnector(s.Config(s.AdminUser, s.AdminPassword, ""))
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("mysqltest: connect as %s: %v", s.AdminUser, err)
	}
	defer conn.Close()
	for _, st := range statements {
		if _, err := conn.ExecContext(ctx, st); err != nil {
			t.Fatalf("mysqltest: %s: %v", st, err)
		}
	}
}

// Stop stops the server now (a normal shutdown, killed if it takes too long); later calls do nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

type bins struct{ mariadbd, installDB, pluginDir string }

// findBins finds mariadbd and mariadb-install-db.
func findBins() (bins, error) {
	var b bins
	dirs := []string{"/usr/sbin", "/usr/bin"}
	if d := os.Getenv(EnvBin); d != "" {
		dirs = []string{d}
	}
	find := func(names ...string) string {
		for _, d := range dirs {
			for _, n := range names {
				if p := filepath.Join(d, n); executable(p) {
					return p
				}
			}
		}
		if os.Getenv(EnvBin) != "" {
			return ""
		}
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
		}
		return ""
	}
	b.mariadbd = find("mariadbd", "mysqld")
	b.installDB = find("mariadb-install-db", "mysql_install_db")
	if b.mariadbd == "" || b.installDB == "" {
		where := "/usr/sbin, /usr/bin or PATH"
		if d := os.Getenv(EnvBin); d != "" {
			where = EnvBin + "=" + d
		}
		return b, fmt.Errorf("no mariadbd and mariadb-install-db in %s", where)
	}
	// Debian's plugin directory, which its mariadbd uses without a configuration file.
	b.pluginDir = "/usr/lib/mysql/plugin"
	return b, nil
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// installDB creates the data directory with root@localhost authenticated by unix_socket only.
func (s *Server) installDB(b bins, runAs *account, common map[string]string) error {
	args := []string{"--no-defaults", "--datadir=" + filepath.Join(s.Dir, "data"),
		"--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve"}
	// It runs as the server's account already (procAttr); with --user it would also try to chown the
	// PAM helper, which only root may.
	args = append(args, flags(common)...)
	cmd := exec.Command(b.installDB, args...)
	cmd.Dir = s.Dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = runAs.procAttr(syscall.SIGKILL)
	runtime.LockOSThread()
	out, err := cmd.CombinedOutput()
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("mariadb-install-db: %v\n%s", err, tail(string(out), 40))
	}
	return nil
}

// writeInit writes the init file that creates the administrator before the server accepts connections.
func (s *Server) writeInit(runAs *account) error {
	init := "CREATE USER '" + AdminUser + "'@'%' IDENTIFIED BY '" + s.AdminPassword + "';\n" +
		"GRANT ALL PRIVILEGES ON *.* TO '" + AdminUser + "'@'%' WITH GRANT OPTION;\n"
	return writeOwned(runAs, filepath.Join(s.Dir, "init.sql"), []byte(init))
}

// writeCert writes a certificate signed by o.CA (a new CA when nil) and its key into Dir.
func (s *Server) writeCert(runAs *account, o *Options) error {
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
	if err := writeOwned(runAs, filepath.Join(s.Dir, "server.crt"), certPEM); err != nil {
		return err
	}
	if err := writeOwned(runAs, filepath.Join(s.Dir, "server.key"), keyPEM); err != nil {
		return err
	}
	s.CA, s.CAFile = ca, ca.CertFile
	s.fullVerify = slices.Contains(hosts, s.Host)
	return nil
}

// writeOwned writes a file only its owner may read, owned by the server's account.
func writeOwned(runAs *account, path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	return runAs.chown(path)
}

var errPortTaken = errors.New("the port was taken")

func flags(settings map[string]string) []string {
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var args []string
	for _, k := range keys {
		if settings[k] == "" {
			args = append(args, "--"+k)
		} else {
			args = append(args, "--"+k+"="+settings[k])
		}
	}
	return args
}

// start runs mariadbd on port and waits until the administrator can log in.
func (s *Server) start(b bins, runAs *account, port int, settings map[string]string) error {
	_ = os.Remove(s.errorLog)
	args := append([]string{"--no-defaults", "--datadir=" + filepath.Join(s.Dir, "data"), "--port=" + strconv.Itoa(port)},
		flags(settings)...)
	cmd := exec.Command(b.mariadbd, args...)
	cmd.Dir = s.Dir
	cmd.Env = childEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The data is thrown away: if the test binary dies, the server goes with it.
	cmd.SysProcAttr = runAs.procAttr(syscall.SIGKILL)
	// The parent-death signal follows the thread that started the child: start it from a thread that
	// is not about to go away.
	runtime.LockOSThread()
	err := cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		// SIGTERM is a normal shutdown: sessions are ended, not waited for.
		_ = cmd.Process.Signal(syscall.SIGTERM)
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
			log := s.Log() + out.String()
			if strings.Contains(log, "Address already in use") || strings.Contains(log, "Do you already have another") {
				return fmt.Errorf("mariadbd on port %d: %w", port, errPortTaken)
			}
			return fmt.Errorf("mariadbd exited before accepting connections (%v)\n%s", waitErr, tail(out.String(), 20))
		case <-ctx.Done():
			stop()
			return fmt.Errorf("mariadbd did not accept connections within %s", startTimeout)
		case <-time.After(50 * time.Millisecond):
		}
		if v, err := s.ping(ctx); err == nil {
			s.Version = v
			break
		}
	}
	s.mu.Lock()
	s.stop = stop
	s.mu.Unlock()
	s.t.Cleanup(func() {
		s.Stop()
		if s.t.Failed() {
			s.t.Logf("mysqltest: error log (last lines):\n%s", tail(s.Log(), 60))
		}
	})
	return nil
}

func (s *Server) ping(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := mysql.NewConnector(s.Config(s.AdminUser, s.AdminPassword, ""))
	if err != nil {
		return "", err
	}
	db := sql.OpenDB(c)
	defer db.Close()
	var v string
	err = db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v)
	return v, err
}

// account is the OS user the server runs as.
type account struct {
	uid, gid uint32
	other    bool // a different user than the test's: chown and switch
}

// osUser picks the account: the test's own, or mysql when the test runs as root.
func osUser() (*account, error) {
	if os.Geteuid() != 0 {
		return &account{}, nil
	}
	u, err := user.Lookup("mysql")
	if err != nil {
		return nil, errors.New("running as root, and MariaDB refuses to run as root, but there is no mysql OS user to run it as (the mariadb-server Debian package creates it)")
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("the mysql OS user has a non-numeric uid or gid (%s:%s)", u.Uid, u.Gid)
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

// childEnv is the environment of mariadb-install-db and mariadbd: the test's, minus the MySQL client
// and server variables (MYSQL_PWD, MYSQL_HOST, MYSQL_TCP_PORT, …), with a locale that exists everywhere.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MYSQL") || strings.HasPrefix(kv, "MARIADB") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
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

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	msg := "mysqltest: MariaDB is not available (" + why + "). Install it with scripts/test.sh, or " +
		"apt-get install mariadb-server (the tests start their own servers; the system service is not needed)"
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
