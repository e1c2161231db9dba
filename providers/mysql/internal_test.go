package mysql

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/kvrotator/kvrotator/providers"
)

// The hashes are what MariaDB 10.11 stored for these passwords (mysql.global_priv after CREATE USER …
// IDENTIFIED BY / IDENTIFIED VIA ed25519 USING PASSWORD(…)), and MySQL's documented PASSWORD('123456').
func TestHashesMatchTheServers(t *testing.T) {
	for pw, want := range map[string]string{
		"SeCrEtPw123": "*5922EA97D36A6D307C58C0E02D5C00F0792D26AC",
		"123456":      "*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9",
	} {
		if got := nativeHash(pw); got != want {
			t.Errorf("nativeHash(%q) = %s, want %s", pw, got, want)
		}
	}
	if got, err := ed25519Hash("edpw"); err != nil || got != "LIEvGDGjHTmKyz3peLRjPqahOct5n6/BQCNm1bOvot4" {
		t.Errorf("ed25519Hash = %s, %v", got, err)
	}
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		pw, err := generatePassword(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != PasswordLength || strings.Trim(pw, passwordAlphabet) != "" || seen[pw] {
			t.Fatalf("password %q", pw)
		}
		seen[pw] = true
	}
	if _, err := generatePassword(bytes.NewReader(bytes.Repeat([]byte{255}, 1<<16))); err == nil {
		t.Fatal("a source of rejected bytes gave a password")
	}
	if _, err := generatePassword(bytes.NewReader(nil)); err == nil {
		t.Fatal("an empty source gave a password")
	}
}

func TestParseVersion(t *testing.T) {
	for v, want := range map[string]flavor{
		"10.11.19-MariaDB-0+deb12u1-log": {mariaDB: true, major: 10, minor: 11, patch: 19},
		"5.5.5-10.6.18-MariaDB":          {mariaDB: true, major: 10, minor: 6, patch: 18},
		"8.0.36":                         {major: 8, minor: 0, patch: 36},
		"8.4.3-azure":                    {major: 8, minor: 4, patch: 3},
		"5.7.44-log":                     {major: 5, minor: 7, patch: 44},
		"":                               {},
	} {
		got := parseVersion(v)
		got.version = ""
		if got != want {
			t.Errorf("parseVersion(%q) = %+v, want %+v", v, got, want)
		}
	}
	if !parseVersion("10.4.0-MariaDB").atLeast(10, 4, 0) || parseVersion("10.3.39-MariaDB").atLeast(10, 4, 0) ||
		!parseVersion("8.0.0").atLeast(5, 7, 6) || parseVersion("5.7.5").atLeast(5, 7, 6) {
		t.Fatal("atLeast")
	}
}

// The statements for each flavour and plugin: a hash wherever the server takes one, the plugin kept,
// and the account and secret as arguments that the driver interpolates and escapes.
func TestAlterStatement(t *testing.T) {
	const pw = "Password0123456789abcdefghijklmnopqrstuv"
	native := nativeHash(pw)
	ed, _ := ed25519Hash(pw)
	mariadb, mysql8 := parseVersion("10.11.19-MariaDB"), parseVersion("8.0.36")
	target := account{user: "orders_b", host: "%"}
	for _, tc := range []struct {
		name      string
		f         flavor
		plugin    string
		query     string
		secret    string
		plaintext bool
	}{
		{"MariaDB native", mariadb, "mysql_native_password", "ALTER USER ?@? IDENTIFIED VIA mysql_native_password USING ?", native, false},
		{"MariaDB ed25519", mariadb, "ed25519", "ALTER USER ?@? IDENTIFIED VIA ed25519 USING ?", ed, false},
		{"MySQL native", mysql8, "mysql_native_password", "ALTER USER ?@? IDENTIFIED WITH mysql_native_password AS ?", native, false},
		{"MySQL caching_sha2", mysql8, "caching_sha2_password", "ALTER USER ?@? IDENTIFIED WITH caching_sha2_password BY ?", pw, true},
		{"MySQL sha256", mysql8, "sha256_password", "ALTER USER ?@? IDENTIFIED WITH sha256_password BY ?", pw, true},
	} {
		st, err := alterStatement(tc.f, tc.plugin, target, pw)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if st.query != tc.query || st.plaintext != tc.plaintext || st.secret != tc.secret || len(st.args) != 3 ||
			st.args[0] != "orders_b" || st.args[1] != "%" || st.args[2] != tc.secret {
			t.Errorf("%s: %q %v %v", tc.name, st.query, st.plaintext, st.args[:2])
		}
	}
	for _, tc := range []struct {
		f      flavor
		plugin string
	}{{mariadb, "unix_socket"}, {mariadb, "caching_sha2_password"}, {mariadb, "parsec"}, {mysql8, "ed25519"}, {mysql8, "auth_socket"}, {mysql8, "mysql_clear_password"}} {
		if _, err := alterStatement(tc.f, tc.plugin, target, pw); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s on %s: %v, want ErrUnsupported", tc.plugin, tc.f.version, err)
		}
	}
}

func TestRedact(t *testing.T) {
	const secret = "s3cr3tPassw0rd"
	err := redact(&gomysql.MySQLError{Number: 1064, Message: "You have an error near '" + secret + "' at line 1"}, secret)
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1064 || strings.Contains(err.Error(), secret) {
		t.Fatalf("redact: %v", err)
	}
	if err := redact(errors.New("broken pipe writing "+secret), secret); strings.Contains(err.Error(), secret) {
		t.Fatalf("redact: %v", err)
	}
	plain := errors.New("connection refused")
	if redact(plain, secret) != plain {
		t.Fatal("redact changed an error without the secret")
	}
	// A syntax error would be permanent and show no secret.
	if err := classify(stepCreate, "db:3306", "rotator", "ALTER USER", redact(&gomysql.MySQLError{Number: 1064, Message: secret}, secret)); !providers.IsPermanent(err) ||
		strings.Contains(err.Error(), secret) {
		t.Fatalf("classify: %v", err)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		step      string
		err       error
		permanent bool
		refusal   error
	}{
		{stepCreate, &gomysql.MySQLError{Number: 1045}, true, nil},
		{stepVerify, &gomysql.MySQLError{Number: 1045}, false, nil},
		{stepCreate, &gomysql.MySQLError{Number: 1040}, false, nil},
		{stepCreate, &gomysql.MySQLError{Number: 1203}, false, nil},
		{stepCreate, &gomysql.MySQLError{Number: 1227}, true, nil},
		{stepVerify, &gomysql.MySQLError{Number: 1049}, true, nil},
		{stepCreate, gomysql.ErrNoTLS, true, ErrNoTLS},
		{stepCreate, gomysql.ErrCleartextPassword, true, ErrAuthMethod},
		{stepVerify, gomysql.ErrOldPassword, true, ErrAuthMethod},
		{stepVerify, gomysql.ErrUnknownPlugin, true, ErrAuthMethod},
		{stepCreate, gomysql.ErrInvalidConn, false, nil},
		{stepCreate, errChainNotTrusted, true, ErrUntrustedServer},
		{stepCreate, &setupError{errors.New("no file")}, true, nil},
	} {
		err := classify(tc.step, "db:3306", "u", "r", tc.err)
		if providers.IsPermanent(err) != tc.permanent || (tc.refusal != nil && !errors.Is(err, tc.refusal)) {
			t.Errorf("%s %v: %v (permanent %v)", tc.step, tc.err, err, providers.IsPermanent(err))
		}
	}
}
