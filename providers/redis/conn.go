package redis

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	redigo "github.com/gomodule/redigo/redis"

	"github.com/kvrotator/kvrotator/providers"
)

// open returns a client that makes one connection to the secret's server as user, for the admin and
// the verification login alike. The connection is made at the first command:
//
//   - over TLS unless the address is redis:// to a loopback host, verifying the server's certificate
//     and name against the CAs the operator configured (KVROTATOR_REDIS_CA_FILE, else the system's
//     roots) during the handshake, before anything else is sent, and presenting the operator's client
//     certificate when one is configured;
//   - authenticating with HELLO 2 AUTH <user> <password> (AUTH <user> <password> on servers without
//     HELLO): Redis has no challenge-response authentication, which is why the server must be verified
//     first. Redis keeps both out of SLOWLOG and MONITOR (their arguments are redacted).
//
// Nothing else is sent during the connection set-up: no client name, no library name or version, no
// CLIENT TRACKING or maintenance notifications, no SELECT. Nothing is retried (one dial attempt, no
// command repeated): the engine owns retries.
func (p *Provider) open(c config, user, password string) (*client, *tlsNotes, error) {
	notes := &tlsNotes{}
	dialer := &net.Dialer{Timeout: ConnectTimeout}
	dial := dialer.DialContext
	if c.tls {
		tc, err := p.tlsConfig(c.host, notes)
		if err != nil {
			return nil, notes, &setupError{err}
		}
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tconn := tls.Client(conn, tc)
			if err := tconn.HandshakeContext(ctx); err != nil {
				_ = conn.Close()
				return nil, &handshakeError{err}
			}
			return tconn, nil
		}
	}
	return &client{addr: c.server(), dial: dial, user: user, password: password}, notes, nil
}

// client is one connection to a server as one user, made at its first command. It is used by one
// goroutine.
type client struct {
	addr           string
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	user, password string
	conn           redigo.Conn
}

// Do sends one command and returns its reply (RESP2: strings, []byte bulk strings, int64, []any, nil),
// connecting first when the client has no connection. An error reply is a redigo.Error.
func (cl *client) Do(ctx context.Context, cmd string, args ...any) (any, error) {
	if cl.conn == nil {
		conn, err := redigo.DialContext(ctx, "tcp", cl.addr, redigo.DialContextFunc(cl.dial),
			redigo.DialReadTimeout(ConnectTimeout), redigo.DialWriteTimeout(ConnectTimeout))
		if err != nil {
			return nil, err
		}
		if err := login(ctx, conn, cl.user, cl.password); err != nil {
			_ = conn.Close()
			return nil, err
		}
		cl.conn = conn
	}
	return redigo.DoContext(cl.conn, ctx, cmd, args...)
}

// Close closes the connection, if one was made.
func (cl *client) Close() error {
	if cl.conn == nil {
		return nil
	}
	return cl.conn.Close()
}

// login authenticates conn: HELLO 2 AUTH <user> <password>, and when the server answers that with an
// error reply (a server or proxy without HELLO, or one that rejects the login), AUTH <user> <password>,
// whose error reply is returned wrapped in a loginError, so that it cannot pass for the reply to a
// command (see commandNoPerm).
func login(ctx context.Context, conn redigo.Conn, user, password string) error {
	args := []any{2}
	if password != "" {
		args = append(args, "AUTH", user, password)
	}
	_, err := redigo.DoContext(conn, ctx, "HELLO", args...)
	var rerr redigo.Error
	if err == nil || !errors.As(err, &rerr) || password == "" {
		return err
	}
	if _, err := redigo.DoContext(conn, ctx, "AUTH", user, password); err != nil {
		return &loginError{err}
	}
	return nil
}

// loginError is the server's error reply to the login (AUTH) rather than to a command. Its text is the
// reply's.
type loginError struct{ err error }

func (e *loginError) Error() string { return e.err.Error() }
func (e *loginError) Unwrap() error { return e.err }

// handshakeError is a TLS handshake that failed after the TCP connection was made.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// tlsNotes records what the TLS handshake showed that errors cannot: whether the server asked for a
// client certificate. With TLS 1.3 a server that rejects the client's certificate (or its absence)
// says so after the client has finished the handshake, so the client sees a reset connection at its
// first command rather than a handshake error.
type tlsNotes struct{ askedForCert atomic.Bool }

// explain marks err as the server refusing the client's certificate when the server asked for one and
// the connection then broke.
func (n *tlsNotes) explain(err error) error {
	if err == nil || n == nil || !n.askedForCert.Load() {
		return err
	}
	var rerr redigo.Error
	if errors.As(err, &rerr) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "remote error: tls:") {
		return &certRefusedError{err}
	}
	return err
}

// certRefusedError is a connection that broke right after a server asked for a client certificate.
type certRefusedError struct{ err error }

func (e *certRefusedError) Error() string { return e.err.Error() }
func (e *certRefusedError) Unwrap() error { return e.err }

// tlsConfig verifies the server as host (its certificate must name it) against the operator's CA file
// when set, else the system's roots, and presents the operator's client certificate when set. The
// files are read at each connection, so renewed files are picked up without a restart.
func (p *Provider) tlsConfig(host string, notes *tlsNotes) (*tls.Config, error) {
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if p.caFile != "" {
		b, err := os.ReadFile(p.caFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvCAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s=%s holds no PEM certificate", EnvCAFile, p.caFile)
		}
		tc.RootCAs = pool
	}
	var client *tls.Certificate
	if p.certFile != "" {
		pair, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
		if err != nil {
			// LoadX509KeyPair's errors name files and PEM problems, never key material.
			return nil, fmt.Errorf("%s/%s: %w", EnvClientCertFile, EnvClientKeyFile, err)
		}
		client = &pair
	}
	// Called only when the server asks for a client certificate (a CertificateRequest).
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		notes.askedForCert.Store(true)
		if client == nil {
			return &tls.Certificate{}, nil // none: the server decides whether that is acceptable
		}
		return client, nil
	}
	return tc, nil
}

// passwordHash is how Redis stores a password and how ACL SETUSER accepts one (#<hash>): the
// lower-case hex SHA-256 of the password.
func passwordHash(password string) string {
	sum := sha256.Sum256([]byte(password))
	return hex.EncodeToString(sum[:])
}

// setPassword connects as the admin and makes hash target's only password. What it sends, in order:
//
//  1. ACL GETUSER <user> for both users: they must exist, and target must be on (a user that is off
//     cannot log in). Target's rules are kept for step 5.
//  2. CLIENT LIST (unless override): no connection may be authenticated as target.
//  3. ACL SAVE, with redis-persist = acl-save: fails before anything changed when the server has no
//     ACL file.
//  4. ACL SETUSER <target> resetpass #<sha256 hex of the new password>: resetpass removes every
//     password of the user (and nopass), #<hash> adds the new one; no other rule is named, so
//     its flags, commands, keys, channels and selectors stay as they are.
//  5. ACL GETUSER <target>: its only password must be the new hash, and every other rule (flags but
//     nopass, commands, keys, channels, selectors) what step 1 read. Otherwise ErrRulesChanged.
//  6. ACL SAVE, with redis-persist = acl-save.
//
// The password itself is never sent: only its hash, which is what Redis stores and shows anyway (ACL
// GETUSER, ACL LIST, the ACL file).
func (p *Provider) setPassword(ctx context.Context, c config, adminPassword, target, hash string, override bool) error {
	ctx, cancel := context.WithTimeout(ctx, OperationTimeout)
	defer cancel()
	fail := func(reason string, err error) error {
		return classify(stepCreate, c.server(), c.admin, reason, scrub(err, adminPassword, hash))
	}
	rdb, notes, err := p.open(c, c.admin, adminPassword)
	if err != nil {
		return fail("connecting as the admin", err)
	}
	defer rdb.Close()
	// The first command makes the connection: a broken one may be the server refusing our certificate.
	first := fail
	fail = func(reason string, err error) error { return first(reason, notes.explain(err)) }

	var before *aclUser
	for _, u := range c.users {
		au, err := getUser(ctx, rdb, u)
		if err != nil {
			return fail("ACL GETUSER "+u, err)
		}
		if au == nil {
			return providers.ConfigErrorf(TagUsers, strings.Join(c.users, ","),
				"ACL user %q does not exist on %s (names are case-sensitive); create it with the application's permissions first", u, c.server())
		}
		if u == target {
			before = au
		}
	}
	if !before.on() {
		return providers.ConfigErrorf(TagUsers, strings.Join(c.users, ","),
			"ACL user %q is off on %s and cannot log in: ACL SETUSER %s on", target, c.server(), target)
	}
	if !override {
		n, err := countConnections(ctx, rdb, target)
		if err != nil {
			return fail("CLIENT LIST (counting the connections of "+target+")", err)
		}
		if n > 0 {
			return fmt.Errorf("redis create: not resetting the password of %q on %s: %w (%d, e.g. clients still on the previous version); "+
				"it is tried again later, or override in an emergency", target, c.server(), ErrOpenSessions, n)
		}
	}
	if c.persist == PersistACLSave {
		if err := saveACL(ctx, rdb); err != nil {
			return saveError(c, "ACL SAVE (before the change)", err, fail)
		}
	}
	if _, err := rdb.Do(ctx, "ACL", "SETUSER", target, "resetpass", "#"+hash); err != nil {
		return fail("ACL SETUSER "+target+" resetpass #<new hash>", err)
	}
	after, err := getUser(ctx, rdb, target)
	if err != nil {
		return fail("ACL GETUSER "+target+" (after the change)", err)
	}
	if diff := before.changedBy(after, hash); diff != "" {
		return providers.Permanent(&Error{Step: stepCreate, Server: c.server(), User: c.admin, Err: ErrRulesChanged,
			Reason: fmt.Sprintf("after ACL SETUSER %s resetpass, %s (was someone changing the user at the same time?); check it with ACL GETUSER %s", target, diff, target)})
	}
	if c.persist == PersistACLSave {
		if err := saveACL(ctx, rdb); err != nil {
			return saveError(c, "ACL SAVE (after the change: the running server has the new password, its ACL file does not)", err, fail)
		}
	}
	return nil
}

func saveACL(ctx context.Context, rdb *client) error {
	_, err := rdb.Do(ctx, "ACL", "SAVE")
	return err
}

// saveError turns the reply of a server without an ACL file into a configuration error on redis-persist.
func saveError(c config, reason string, err error, fail func(string, error) error) error {
	if strings.Contains(err.Error(), "not configured to use an ACL file") {
		return providers.ConfigErrorf(TagPersist, c.persist,
			"%s has no ACL file (aclfile in redis.conf), so ACL SAVE cannot keep the new password across a restart; "+
				"configure an ACL file, or set %s=%s if the users' passwords need not survive a restart (or are kept elsewhere)",
			c.server(), TagPersist, PersistNone)
	}
	return fail(reason, err)
}

// aclUser is what ACL GETUSER says about a user.
type aclUser struct {
	flags     []string
	passwords []string
	// rules are the other fields (commands, keys, channels, selectors, and whatever a newer server
	// adds), each as a canonical text.
	rules map[string]string
}

func (u *aclUser) on() bool { return slices.Contains(u.flags, "on") }

// changedBy describes how after differs from u other than by the change meant: its passwords must be
// exactly hash, its flags u's without nopass, its rules u's. "" when it is only that change.
func (u *aclUser) changedBy(after *aclUser, hash string) string {
	if after == nil {
		return "the user no longer exists"
	}
	if len(after.passwords) != 1 || after.passwords[0] != hash {
		return fmt.Sprintf("the user has %d password(s), not only the new one", len(after.passwords))
	}
	strip := func(f []string) []string {
		return slices.DeleteFunc(slices.Clone(f), func(s string) bool { return s == "nopass" })
	}
	if b, a := strip(u.flags), strip(after.flags); !slices.Equal(b, a) {
		return fmt.Sprintf("its flags are %v, were %v", a, b)
	}
	var fields []string
	for k := range u.rules {
		fields = append(fields, k)
	}
	for k := range after.rules {
		if _, ok := u.rules[k]; !ok {
			fields = append(fields, k)
		}
	}
	sort.Strings(fields)
	for _, k := range fields {
		if u.rules[k] != after.rules[k] {
			return fmt.Sprintf("its %s are %s, were %s", k, orNone(after.rules[k]), orNone(u.rules[k]))
		}
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// getUser runs ACL GETUSER; nil when the user does not exist.
func getUser(ctx context.Context, rdb *client, name string) (*aclUser, error) {
	reply, err := rdb.Do(ctx, "ACL", "GETUSER", name)
	if err != nil {
		return nil, err
	}
	if reply == nil {
		return nil, nil
	}
	return parseUser(textOf(reply))
}

// parseUser reads ACL GETUSER's reply: a flat array of field names and values (RESP2), or a map
// (RESP3). Flags and passwords are arrays of strings; Redis 6 gives keys as an array and Redis 7 as a
// string, and Redis 7 adds selectors: every field but flags and passwords is kept as canonical text
// and compared as it is.
func parseUser(reply any) (*aclUser, error) {
	u := &aclUser{rules: map[string]string{}}
	set := func(k any, v any) error {
		key, ok := k.(string)
		if !ok {
			return fmt.Errorf("ACL GETUSER: a field name is %T, not a string", k)
		}
		switch key {
		case "flags", "passwords":
			list, ok := v.([]any)
			if !ok {
				return fmt.Errorf("ACL GETUSER: %s is %T, not an array", key, v)
			}
			var ss []string
			for _, e := range list {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("ACL GETUSER: an element of %s is %T, not a string", key, e)
				}
				ss = append(ss, s)
			}
			if key == "flags" {
				u.flags = ss
			} else {
				u.passwords = ss
			}
		default:
			u.rules[key] = canonical(v)
		}
		return nil
	}
	switch r := reply.(type) {
	case []any:
		if len(r)%2 != 0 {
			return nil, errors.New("ACL GETUSER: an odd number of elements")
		}
		for i := 0; i < len(r); i += 2 {
			if err := set(r[i], r[i+1]); err != nil {
				return nil, err
			}
		}
	case map[any]any:
		for k, v := range r {
			if err := set(k, v); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("ACL GETUSER: unexpected reply type %T", reply)
	}
	if u.flags == nil {
		return nil, errors.New("ACL GETUSER: the reply has no flags")
	}
	return u, nil
}

// textOf returns reply with every bulk string ([]byte, as redigo reads them) as a string, as simple
// strings already are: Redis answers some fields of ACL GETUSER with one and some with the other, and
// their text is what counts.
func textOf(reply any) any {
	switch x := reply.(type) {
	case []byte:
		return string(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = textOf(e)
		}
		return out
	}
	return reply
}

// canonical is a reply value as text that two equal values share: strings quoted, arrays in order,
// maps sorted by key.
func canonical(v any) string {
	switch x := v.(type) {
	case nil:
		return "nil"
	case string:
		return strconv.Quote(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = canonical(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case map[any]any:
		parts := make([]string, 0, len(x))
		for k, e := range x {
			parts = append(parts, canonical(k)+":"+canonical(e))
		}
		sort.Strings(parts)
		return "{" + strings.Join(parts, " ") + "}"
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

// countConnections counts the connections authenticated as user. Redis's CLIENT LIST filters by TYPE
// and ID only (Valkey's also by USER), so the whole list is read and its user= fields counted; a
// client name cannot contain spaces, so no other field can pass for one.
func countConnections(ctx context.Context, rdb *client, user string) (int, error) {
	list, err := redigo.String(rdb.Do(ctx, "CLIENT", "LIST"))
	if err != nil {
		return 0, err
	}
	return connectionsOf(list, user), nil
}

// connectionsOf counts the lines of a CLIENT LIST reply whose user= field is user.
func connectionsOf(list, user string) int {
	n := 0
	for _, line := range strings.Split(list, "\n") {
		for _, field := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(field, "user="); ok {
				if v == user {
					n++
				}
				break
			}
		}
	}
	return n
}
