package postgres_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/postgres"
)

// tags are a valid alternating secret's tags, with the changes applied ("" deletes a tag).
func tags(changes ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":     "postgres",
		"ProviderAddress":       "db.example.com:5432/orders",
		"postgres-users":        "orders_a,orders_b",
		"CredentialId":          "orders_a",
		"postgres-admin-user":   "rotator",
		"postgres-admin-secret": "orders-db-rotator",
	}
	for i := 0; i+1 < len(changes); i += 2 {
		if changes[i+1] == "" {
			delete(p, changes[i])
		} else {
			p[changes[i]] = changes[i+1]
		}
	}
	return p
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		tags providers.Params
		// wantTags are the tags the errors must name, in any order; none means valid.
		wantTags []string
		// wantIn is a piece of the message.
		wantIn string
	}{
		{name: "valid", tags: tags()},
		{name: "postgres URL address", tags: tags("ProviderAddress", "postgres://db.example.com/orders")},
		{name: "postgresql URL address", tags: tags("ProviderAddress", "postgresql://db.example.com:6432/orders")},
		{name: "IPv6 address", tags: tags("ProviderAddress", "[2001:db8::5]:5432/orders")},
		{name: "no port", tags: tags("ProviderAddress", "db.example.com/orders")},
		{name: "verify-full", tags: tags("postgres-sslmode", "verify-full")},
		{name: "default sslmode", tags: tags("postgres-sslmode", "")},
		{name: "verify-ca", tags: tags("postgres-sslmode", "VERIFY-CA")},
		{name: "disable on 127.0.0.1", tags: tags("ProviderAddress", "127.0.0.1:5432/orders", "postgres-sslmode", "disable")},
		{name: "disable on localhost", tags: tags("ProviderAddress", "localhost/orders", "postgres-sslmode", "disable")},
		{name: "disable on ::1", tags: tags("ProviderAddress", "[::1]:5433/orders", "postgres-sslmode", "disable")},
		{name: "connection-string format", tags: tags("postgres-format", "connection-string")},
		{name: "tag names in any case", tags: tags("postgres-users", "", "Postgres-Users", "orders_a,orders_b")},
		{name: "single user without CredentialId", tags: tags("postgres-users", "orders", "CredentialId", "")},
		{name: "single user with its CredentialId", tags: tags("postgres-users", "orders", "CredentialId", "orders")},
		{name: "spaces around users", tags: tags("postgres-users", " orders_a , orders_b ")},

		{name: "address missing", tags: tags("ProviderAddress", ""), wantTags: []string{"ProviderAddress"}, wantIn: "missing"},
		{name: "address with user and password", tags: tags("ProviderAddress", "postgres://admin:hunter2@db.example.com/orders"),
			wantTags: []string{"ProviderAddress"}, wantIn: "user information"},
		{name: "address with user only", tags: tags("ProviderAddress", "admin@db.example.com/orders"), wantTags: []string{"ProviderAddress"}, wantIn: "user information"},
		{name: "address with password query", tags: tags("ProviderAddress", "db.example.com/orders?password=hunter2"), wantTags: []string{"ProviderAddress"}, wantIn: "query"},
		{name: "address without database", tags: tags("ProviderAddress", "db.example.com:5432"), wantTags: []string{"ProviderAddress"}, wantIn: "no database"},
		{name: "address with two path segments", tags: tags("ProviderAddress", "db.example.com/orders/x"), wantTags: []string{"ProviderAddress"}, wantIn: "one database"},
		{name: "address with bad port", tags: tags("ProviderAddress", "db.example.com:99999/orders"), wantTags: []string{"ProviderAddress"}, wantIn: "port"},
		{name: "address as user:password without @", tags: tags("ProviderAddress", "admin:hunter2/orders"), wantTags: []string{"ProviderAddress"}},
		{name: "address with other scheme", tags: tags("ProviderAddress", "mysql://db.example.com/orders"), wantTags: []string{"ProviderAddress"}, wantIn: "scheme"},
		{name: "address with several hosts", tags: tags("ProviderAddress", "postgres://a.example.com,b.example.com/orders"), wantTags: []string{"ProviderAddress"}},
		{name: "address on a Unix socket", tags: tags("ProviderAddress", "/var/run/postgresql/orders"), wantTags: []string{"ProviderAddress"}},
		{name: "users missing", tags: tags("postgres-users", ""), wantTags: []string{"postgres-users"}, wantIn: "missing"},
		{name: "three users", tags: tags("postgres-users", "a,b,c"), wantTags: []string{"postgres-users"}, wantIn: "3 logins"},
		{name: "same user twice", tags: tags("postgres-users", "orders_a,orders_a"), wantTags: []string{"postgres-users"}, wantIn: "same login"},
		{name: "empty user", tags: tags("postgres-users", "orders_a,"), wantTags: []string{"postgres-users"}},
		{name: "user with a quote", tags: tags("postgres-users", `orders_a,x"; DROP ROLE y`), wantTags: []string{"postgres-users"}},
		{name: "CredentialId missing with two users", tags: tags("CredentialId", ""), wantTags: []string{"CredentialId"}, wantIn: "missing"},
		{name: "CredentialId an unknown user", tags: tags("CredentialId", "orders_c"), wantTags: []string{"CredentialId"}, wantIn: "not one of the logins"},
		{name: "CredentialId in other case", tags: tags("CredentialId", "ORDERS_A"), wantTags: []string{"CredentialId"}, wantIn: "case-sensitive"},
		{name: "single user with another CredentialId", tags: tags("postgres-users", "orders_b"), wantTags: []string{"CredentialId"}},
		{name: "admin user missing", tags: tags("postgres-admin-user", ""), wantTags: []string{"postgres-admin-user"}, wantIn: "missing"},
		{name: "admin user is a rotated login", tags: tags("postgres-admin-user", "orders_b"), wantTags: []string{"postgres-admin-user"}, wantIn: "separate admin"},
		{name: "admin user not a role name", tags: tags("postgres-admin-user", "rot ator"), wantTags: []string{"postgres-admin-user"}},
		{name: "admin secret missing", tags: tags("postgres-admin-secret", ""), wantTags: []string{"postgres-admin-secret"}, wantIn: "missing"},
		{name: "admin secret holds a password", tags: tags("postgres-admin-secret", "hunter2!x"), wantTags: []string{"postgres-admin-secret"}, wantIn: "never holds"},
		{name: "sslmode disable on a remote host", tags: tags("postgres-sslmode", "disable"), wantTags: []string{"postgres-sslmode"}, wantIn: "loopback"},
		{name: "sslmode require", tags: tags("postgres-sslmode", "require"), wantTags: []string{"postgres-sslmode"}, wantIn: "without checking the server's certificate"},
		{name: "sslmode require on loopback", tags: tags("ProviderAddress", "127.0.0.1/orders", "postgres-sslmode", "Require"),
			wantTags: []string{"postgres-sslmode"}, wantIn: "KVROTATOR_POSTGRES_CA_FILE"},
		{name: "sslmode prefer", tags: tags("postgres-sslmode", "prefer"), wantTags: []string{"postgres-sslmode"}, wantIn: "plain text"},
		{name: "sslmode nonsense", tags: tags("postgres-sslmode", "yes"), wantTags: []string{"postgres-sslmode"}},
		{name: "unknown format", tags: tags("postgres-format", "jdbc"), wantTags: []string{"postgres-format"}},
		{name: "unknown postgres- tag", tags: tags("postgres-user", "orders_a"), wantTags: []string{"postgres-user"}, wantIn: "unknown tag"},
		{name: "a tag twice in different case", tags: tags("POSTGRES-FORMAT", "password", "postgres-format", "password"), wantTags: []string{"postgres-format"}, wantIn: "2 times"},
		{name: "several problems at once", tags: tags("ProviderAddress", "", "postgres-admin-user", ""),
			wantTags: []string{"ProviderAddress", "postgres-admin-user"}},
	}
	p := postgres.New()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Validate(tc.tags)
			if len(tc.wantTags) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted the tags")
			}
			if !providers.IsPermanent(err) {
				t.Errorf("not permanent: %v", err)
			}
			var named []string
			for _, e := range flatten(err) {
				var ce *providers.ConfigError
				if !errors.As(e, &ce) {
					t.Fatalf("not a ConfigError: %v", e)
				}
				named = append(named, strings.ToLower(ce.Tag))
			}
			for _, want := range tc.wantTags {
				if !contains(named, strings.ToLower(want)) {
					t.Errorf("errors name %v, want %s: %v", named, want, err)
				}
			}
			if len(named) != len(tc.wantTags) {
				t.Errorf("%d errors, want %d: %v", len(named), len(tc.wantTags), err)
			}
			if tc.wantIn != "" && !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("%q does not say %q", err, tc.wantIn)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error repeats a password: %v", err)
			}
		})
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// References declares everything the tags make the provider reach, normalised as the bindings see it:
// the server with its port written out, the admin secret, the admin login and both rotated logins.
func TestReferences(t *testing.T) {
	p := postgres.New()
	for _, tc := range []struct {
		name string
		tags providers.Params
		want []providers.Reference
	}{
		{"alternating", tags(), []providers.Reference{
			{Kind: providers.RefServer, Tag: "ProviderAddress", Value: "db.example.com:5432/orders"},
			{Kind: providers.RefSecret, Tag: "postgres-admin-secret", Value: "orders-db-rotator"},
			{Kind: providers.RefLogin, Tag: "postgres-admin-user", Value: "rotator"},
			{Kind: providers.RefLogin, Tag: "postgres-users", Value: "orders_a"},
			{Kind: providers.RefLogin, Tag: "postgres-users", Value: "orders_b"},
		}},
		{"URL, other port, single user", tags("ProviderAddress", "postgresql://db.example.com:6432/orders", "postgres-users", "orders", "CredentialId", ""),
			[]providers.Reference{
				{Kind: providers.RefServer, Tag: "ProviderAddress", Value: "db.example.com:6432/orders"},
				{Kind: providers.RefSecret, Tag: "postgres-admin-secret", Value: "orders-db-rotator"},
				{Kind: providers.RefLogin, Tag: "postgres-admin-user", Value: "rotator"},
				{Kind: providers.RefLogin, Tag: "postgres-users", Value: "orders"},
			}},
		{"IPv6", tags("ProviderAddress", "[2001:db8::5]/orders"), []providers.Reference{
			{Kind: providers.RefServer, Tag: "ProviderAddress", Value: "[2001:db8::5]:5432/orders"},
			{Kind: providers.RefSecret, Tag: "postgres-admin-secret", Value: "orders-db-rotator"},
			{Kind: providers.RefLogin, Tag: "postgres-admin-user", Value: "rotator"},
			{Kind: providers.RefLogin, Tag: "postgres-users", Value: "orders_a"},
			{Kind: providers.RefLogin, Tag: "postgres-users", Value: "orders_b"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.Validate(tc.tags); err != nil {
				t.Fatal(err)
			}
			got := p.References(tc.tags)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("References:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}
