package redis

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	redigo "github.com/gomodule/redigo/redis"

	"github.com/kvrotator/kvrotator/providers"
)

// What Redis 7 answers to ACL GETUSER over RESP2 (a flat array), with a selector.
func redis7User(passwords []any, flags ...any) []any {
	return []any{
		"flags", flags,
		"passwords", passwords,
		"commands", "-@all +@read +@write -flushdb",
		"keys", "~app:* %R~app:ro:*",
		"channels", "&app.*",
		"selectors", []any{[]any{"commands", "-@all +get", "keys", "~other:*", "channels", ""}},
	}
}

func TestParseUser(t *testing.T) {
	u, err := parseUser(redis7User([]any{"aa", "bb"}, "on", "sanitize-payload"))
	if err != nil {
		t.Fatal(err)
	}
	if !u.on() || fmt.Sprint(u.passwords) != "[aa bb]" || u.rules["keys"] != `"~app:* %R~app:ro:*"` ||
		!strings.Contains(u.rules["selectors"], `"~other:*"`) {
		t.Fatalf("parsed %+v", u)
	}
	// Redis 6 gives keys as an array; RESP3 a map: both are read.
	r6, err := parseUser([]any{"flags", []any{"off", "allchannels"}, "passwords", []any{}, "commands", "+@all", "keys", []any{"*"}})
	if err != nil || r6.on() || r6.rules["keys"] != `["*"]` {
		t.Fatalf("Redis 6 reply: %+v %v", r6, err)
	}
	m, err := parseUser(map[any]any{"flags": []any{"on"}, "passwords": []any{"cc"}, "commands": "+@all"})
	if err != nil || !m.on() || m.rules["commands"] != `"+@all"` {
		t.Fatalf("RESP3 reply: %+v %v", m, err)
	}
	// As redigo reads it: bulk strings as []byte, simple strings as string; the same user as text.
	raw := []any{[]byte("flags"), []any{"on", []byte("sanitize-payload")}, []byte("passwords"), []any{[]byte("aa"), []byte("bb")},
		[]byte("commands"), []byte("-@all +@read +@write -flushdb"), []byte("keys"), []byte("~app:* %R~app:ro:*"),
		[]byte("channels"), []byte("&app.*"), []byte("selectors"), []any{[]any{[]byte("commands"), []byte("-@all +get"),
			[]byte("keys"), []byte("~other:*"), []byte("channels"), []byte("")}}}
	b, err := parseUser(textOf(raw))
	if err != nil || b.changedBy(u, "x") != "the user has 2 password(s), not only the new one" || fmt.Sprint(b) != fmt.Sprint(u) {
		t.Fatalf("bulk-string reply: %+v %v, want %+v", b, err, u)
	}
	for _, bad := range []any{"OK", []any{"flags"}, []any{"flags", "on"}, []any{"commands", "+@all"}, []any{int64(1), []any{}}} {
		if _, err := parseUser(bad); err == nil {
			t.Fatalf("parseUser(%v) accepted it", bad)
		}
	}
}

func TestChangedBy(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	parse := func(reply []any) *aclUser {
		u, err := parseUser(reply)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	before := parse(redis7User([]any{"old1", "old2"}, "on", "nopass"))
	if d := before.changedBy(parse(redis7User([]any{hash}, "on")), hash); d != "" {
		t.Fatalf("only the passwords (and nopass) changed, but: %s", d)
	}
	changed := redis7User([]any{hash}, "on")
	changed[5] = "+@all"
	for name, tc := range map[string]struct {
		after *aclUser
		want  string
	}{
		"gone":            {nil, "no longer exists"},
		"other password":  {parse(redis7User([]any{"other"}, "on")), "not only the new one"},
		"two passwords":   {parse(redis7User([]any{hash, "old1"}, "on")), "2 password(s)"},
		"switched off":    {parse(redis7User([]any{hash}, "off")), "flags"},
		"commands":        {parse(changed), "commands are"},
		"a field dropped": {parse([]any{"flags", []any{"on"}, "passwords", []any{hash}}), "(none)"},
	} {
		if d := before.changedBy(tc.after, hash); !strings.Contains(d, tc.want) {
			t.Fatalf("%s: %q, want %q", name, d, tc.want)
		}
	}
}

func TestConnectionsOf(t *testing.T) {
	list := "id=3 addr=127.0.0.1:5 laddr=127.0.0.1:6379 fd=8 name=user=app_b age=1 idle=0 flags=N db=0 cmd=get user=app_a redir=-1 resp=2\n" +
		"id=4 addr=127.0.0.1:6 laddr=127.0.0.1:6379 fd=9 name= age=1 idle=0 flags=N db=0 cmd=get user=app_b redir=-1 resp=2\n" +
		"id=5 addr=127.0.0.1:7 laddr=127.0.0.1:6379 fd=10 name= age=1 idle=0 flags=P db=0 cmd=subscribe user=app_b redir=-1 resp=3\n" +
		"id=6 addr=127.0.0.1:8 laddr=127.0.0.1:6379 fd=11 name= age=1 idle=0 flags=N db=0 cmd=client|list user=rotator redir=-1 resp=2\n"
	for user, want := range map[string]int{"app_a": 1, "app_b": 2, "rotator": 1, "app": 0, "user=app_b": 0} {
		if got := connectionsOf(list, user); got != want {
			t.Fatalf("%s: %d connections, want %d", user, got, want)
		}
	}
}

func TestPasswordHash(t *testing.T) {
	// The example of Redis's ACL documentation: #<hash> of "foobar".
	if got := passwordHash("foobar"); got != "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2" {
		t.Fatalf("passwordHash(foobar) = %s", got)
	}
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		pw, err := generatePassword(New().rand)
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != PasswordLength || strings.Trim(pw, passwordAlphabet) != "" || seen[pw] {
			t.Fatalf("password %q", pw)
		}
		seen[pw] = true
	}
	// Bytes above the largest multiple of 62 are rejected, not folded: a source of 0xff never yields one.
	if _, err := generatePassword(bytes.NewReader(bytes.Repeat([]byte{0xff}, 100*2*PasswordLength))); err == nil {
		t.Fatal("a source that only returns rejected bytes produced a password")
	}
	if _, err := generatePassword(io.LimitReader(bytes.NewReader(nil), 0)); err == nil {
		t.Fatal("an empty source produced a password")
	}
}

func TestScrub(t *testing.T) {
	hash := hex.EncodeToString(make([]byte, sha256.Size))
	reply := redigo.Error("ERR Error in ACL SETUSER modifier '#" + hash + "': Syntax error")
	got := scrub(reply, hash)
	var rerr redigo.Error
	if strings.Contains(got.Error(), hash) || !errors.As(got, &rerr) || !strings.Contains(got.Error(), "[redacted]") {
		t.Fatalf("scrub: %v", got)
	}
	if e := classify(stepCreate, "h:1", "admin", "ACL SETUSER", got); !providers.IsPermanent(e) || strings.Contains(e.Error(), hash) {
		t.Fatalf("classify: %v", e)
	}
	plain := errors.New("dial tcp: secret-pw")
	if got := scrub(plain, "secret-pw"); strings.Contains(got.Error(), "secret-pw") {
		t.Fatalf("scrub: %v", got)
	}
	if got := scrub(plain, "other"); got != plain {
		t.Fatal("scrub changed an error without the secret")
	}
}

func TestClassifyReplies(t *testing.T) {
	for _, tc := range []struct {
		step, reply string
		permanent   bool
	}{
		{stepCreate, "WRONGPASS invalid username-password pair or user is disabled.", true},
		{stepVerify, "WRONGPASS invalid username-password pair or user is disabled.", false},
		{stepCreate, "NOPERM this user has no permissions to run the 'acl|setuser' command", true},
		{stepCreate, "ERR unknown command 'ACL', with args beginning with: ", true},
		{stepCreate, "LOADING Redis is loading the dataset in memory", false},
		{stepCreate, "BUSY Redis is busy running a script.", false},
		{stepCreate, "MASTERDOWN Link with MASTER is down", false},
		{stepCreate, "ERR max number of clients reached", false},
		{stepCreate, "ERR There was an error trying to save the ACLs. Please check the server logs for more information", false},
	} {
		err := classify(tc.step, "h:1", "u", "doing it", redigo.Error(tc.reply))
		var e *Error
		if providers.IsPermanent(err) != tc.permanent || !errors.As(err, &e) || e.Code != strings.Fields(tc.reply)[0] {
			t.Fatalf("%s %q: %v (permanent %v)", tc.step, tc.reply, err, providers.IsPermanent(err))
		}
	}
}

func TestCommandNoPerm(t *testing.T) {
	noperm := redigo.Error("NOPERM this user has no permissions to run the 'acl|whoami' command")
	if !commandNoPerm(noperm) {
		t.Fatal("a NOPERM reply to the command")
	}
	if commandNoPerm(&loginError{noperm}) || commandNoPerm(fmt.Errorf("failed to authenticate: %w", noperm)) || commandNoPerm(errors.New("NOPERM but not a reply")) {
		t.Fatal("a set-up error or a non-reply taken for the command's NOPERM")
	}
	// A rejected login stays a login error when a secret is scrubbed from it, and keeps its code.
	login := scrub(&loginError{redigo.Error("NOPERM user secret-pw has no permissions to run the 'auth' command")}, "secret-pw")
	var lerr *loginError
	if commandNoPerm(login) || !errors.As(login, &lerr) || strings.Contains(login.Error(), "secret-pw") ||
		login.Error() != "NOPERM user [redacted] has no permissions to run the 'auth' command" {
		t.Fatalf("scrubbed login error: %v", login)
	}
	if e := classify(stepVerify, "h:1", "u", "logging in", login); !providers.IsPermanent(e) || redisCode(e) != "NOPERM" {
		t.Fatalf("classify: %v", e)
	}
}

// redisCode is the Code of the Error in err, "" if none.
func redisCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
