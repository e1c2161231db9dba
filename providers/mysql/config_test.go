package mysql_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/mysql"
)

// tags are a valid secret's tags, with the changes applied ("" deletes a tag).
func tags(changes ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":  "mysql",
		"ProviderAddress":    "db.example.com:3306/orders",
		"mysql-users":        "orders_a,orders_b",
		"CredentialId":       "orders_a",
		"mysql-admin-user":   "rotator",
		"mysql-admin-secret": "orders-db-rotator",
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
		{name: "mysql URL address", tags: tags("ProviderAddress", "mysql://db.example.com/orders")},
		{name: "mariadb URL address", tags: tags("ProviderAddress", "mariadb://db.example.com:3307/orders")},
		{name: "no database", tags: tags("ProviderAddress", "db.example.com:3306")},
		{name: "no database, trailing slash", tags: tags("ProviderAddress", "db.example.com/")},
		{name: "IPv6 address", tags: tags("ProviderAddress", "[2001:db8::5]:3306/orders")},
		{name: "Azure flexible server", tags: tags("ProviderAddress", "orders.mysql.database.azure.com")},
		{name: "verify-full", tags: tags("mysql-tls", "verify-full")},
		{name: "verify-ca without the operator's CA", tags: tags("mysql-tls", "VERIFY-CA"), wantTags: []string{"mysql-tls"}, wantIn: "KVROTATOR_MYSQL_CA_FILE"},
		{name: "url format", tags: tags("mysql-format", "url")},
		{name: "accounts with host parts", tags: tags("mysql-users", "orders_a@10.0.0.%,orders_b@10.0.0.0/255.255.255.0")},
		{name: "tag names in any case", tags: tags("mysql-users", "", "MySQL-Users", "orders_a,orders_b")},
		{name: "spaces around users", tags: tags("mysql-users", " orders_a , orders_b ")},

		{name: "address missing", tags: tags("ProviderAddress", ""), wantTags: []string{"ProviderAddress"}, wantIn: "missing"},
		{name: "address with user and password", tags: tags("ProviderAddress", "mysql://admin:hunter2@db.example.com/orders"),
			wantTags: []string{"ProviderAddress"}, wantIn: "user information"},
		{name: "Go driver DSN", tags: tags("ProviderAddress", "admin:hunter2@tcp(db.example.com:3306)/orders"), wantTags: []string{"ProviderAddress"}},
		{name: "tcp() without user", tags: tags("ProviderAddress", "tcp(db.example.com:3306)/orders"), wantTags: []string{"ProviderAddress"}, wantIn: "tcp(host:port)"},
		{name: "address with a query", tags: tags("ProviderAddress", "db.example.com/orders?tls=skip-verify"), wantTags: []string{"ProviderAddress"}, wantIn: "query"},
		{name: "address with two path segments", tags: tags("ProviderAddress", "db.example.com/orders/x"), wantTags: []string{"ProviderAddress"}, wantIn: "one database"},
		{name: "address with bad port", tags: tags("ProviderAddress", "db.example.com:99999"), wantTags: []string{"ProviderAddress"}, wantIn: "port"},
		{name: "address with other scheme", tags: tags("ProviderAddress", "postgres://db.example.com/orders"), wantTags: []string{"ProviderAddress"}, wantIn: "scheme"},
		{name: "address on a Unix socket", tags: tags("ProviderAddress", "/var/run/mysqld/mysqld.sock"), wantTags: []string{"ProviderAddress"}},
		{name: "users missing", tags: tags("mysql-users", ""), wantTags: []string{"mysql-users"}, wantIn: "missing"},
		{name: "one user", tags: tags("mysql-users", "orders_a"), wantTags: []string{"mysql-users"}, wantIn: "1 accounts"},
		{name: "three users", tags: tags("mysql-users", "a,b,c"), wantTags: []string{"mysql-users"}, wantIn: "3 accounts"},
		{name: "same user twice", tags: tags("mysql-users", "orders_a@%,orders_a@localhost"), wantTags: []string{"mysql-users"}, wantIn: "twice"},
		{name: "empty user", tags: tags("mysql-users", "orders_a,"), wantTags: []string{"mysql-users"}},
		{name: "user with a quote", tags: tags("mysql-users", `orders_a,x'@'%`), wantTags: []string{"mysql-users"}},
		{name: "host with a quote", tags: tags("mysql-users", `orders_a,orders_b@%' OR '1`), wantTags: []string{"mysql-users"}},
		{name: "empty host", tags: tags("mysql-users", `orders_a,orders_b@`), wantTags: []string{"mysql-users"}},
		{name: "CredentialId missing", tags: tags("CredentialId", ""), wantTags: []string{"CredentialId"}, wantIn: "missing"},
		{name: "CredentialId an unknown user", tags: tags("CredentialId", "orders_c"), wantTags: []string{"CredentialId"}, wantIn: "not one of the users"},
		{name: "CredentialId in other case", tags: tags("CredentialId", "ORDERS_A"), wantTags: []string{"CredentialId"}, wantIn: "case-sensitive"},
		{name: "CredentialId with a host", tags: tags("CredentialId", "orders_a@%"), wantTags: []string{"CredentialId"}},
		{name: "admin user missing", tags: tags("mysql-admin-user", ""), wantTags: []string{"mysql-admin-user"}, wantIn: "missing"},
		{name: "admin user is a rotated user", tags: tags("mysql-admin-user", "orders_b"), wantTags: []string{"mysql-admin-user"}, wantIn: "separate admin"},
		{name: "admin user with a host", tags: tags("mysql-admin-user", "rotator@%"), wantTags: []string{"mysql-admin-user"}},
		{name: "admin secret missing", tags: tags("mysql-admin-secret", ""), wantTags: []string{"mysql-admin-secret"}, wantIn: "missing"},
		{name: "admin secret holds a password", tags: tags("mysql-admin-secret", "hunter2!x"), wantTags: []string{"mysql-admin-secret"}, wantIn: "never holds"},
		{name: "tls skip-verify", tags: tags("mysql-tls", "skip-verify"), wantTags: []string{"mysql-tls"}, wantIn: "without checking the server's certificate"},
		{name: "tls preferred", tags: tags("mysql-tls", "preferred"), wantTags: []string{"mysql-tls"}, wantIn: "plain text"},
		{name: "tls disable on loopback", tags: tags("ProviderAddress", "127.0.0.1:3306", "mysql-tls", "disable"), wantTags: []string{"mysql-tls"}, wantIn: "loopback too"},
		{name: "tls false", tags: tags("mysql-tls", "false"), wantTags: []string{"mysql-tls"}},
		{name: "tls nonsense", tags: tags("mysql-tls", "yes"), wantTags: []string{"mysql-tls"}},
		{name: "unknown format", tags: tags("mysql-format", "jdbc"), wantTags: []string{"mysql-format"}},
		{name: "unknown mysql- tag", tags: tags("mysql-user", "orders_a"), wantTags: []string{"mysql-user"}, wantIn: "unknown tag"},
		{name: "a tag twice in different case", tags: tags("MYSQL-FORMAT", "password", "mysql-format", "password"), wantTags: []string{"mysql-format"}, wantIn: "2 times"},
		{name: "several problems at once", tags: tags("ProviderAddress", "", "mysql-admin-user", ""),
			wantTags: []string{"ProviderAddress", "mysql-admin-user"}},
	}
	// verify-ca with the operator's CA file (Validate reads no file).
	if err := mysql.New(mysql.WithRootCAFile("/etc/kvrotator/mysql-ca.pem")).Validate(tags("mysql-tls", "verify-ca")); err != nil {
		t.Fatalf("verify-ca with the operator's CA: %v", err)
	}
	p := mysql.New()
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
				if !slices.Contains(named, strings.ToLower(want)) {
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

// References declares everything the tags make the provider reach, normalised as the bindings see it:
// the server with its port written out, the admin secret, the admin user and both accounts as user@host.
func TestReferences(t *testing.T) {
	p := mysql.New()
	for _, tc := range []struct {
		name string
		tags providers.Params
		want []providers.Reference
	}{
		{"default host part", tags(), []providers.Reference{
			{Kind: providers.RefServer, Tag: "ProviderAddress", Value: "db.example.com:3306/orders"},
			{Kind: providers.RefSecret, Tag: "mysql-admin-secret", Value: "orders-db-rotator"},
			{Kind: providers.RefLogin, Tag: "mysql-admin-user", Value: "rotator"},
			{Kind: providers.RefLogin, Tag: "mysql-users", Value: "orders_a@%"},
			{Kind: providers.RefLogin, Tag: "mysql-users", Value: "orders_b@%"},
		}},
		{"URL without database, host parts", tags("ProviderAddress", "mariadb://db.example.com:3307", "mysql-users", "orders_a@10.0.0.%,orders_b@localhost"),
			[]providers.Reference{
				{Kind: providers.RefServer, Tag: "ProviderAddress", Value: "db.example.com:3307"},
				{Kind: providers.RefSecret, Tag: "mysql-admin-secret", Value: "orders-db-rotator"},
				{Kind: providers.RefLogin, Tag: "mysql-admin-user", Value: "rotator"},
				{Kind: providers.RefLogin, Tag: "mysql-users", Value: "orders_a@10.0.0.%"},
				{Kind: providers.RefLogin, Tag: "mysql-users", Value: "orders_b@localhost"},
			}},
		{"IPv6", tags("ProviderAddress", "[2001:db8::5]/orders"), []providers.Reference{
			{Kind: providers.RefServer, Tag: "ProviderAddress", Value: "[2001:db8::5]:3306/orders"},
			{Kind: providers.RefSecret, Tag: "mysql-admin-secret", Value: "orders-db-rotator"},
			{Kind: providers.RefLogin, Tag: "mysql-admin-user", Value: "rotator"},
			{Kind: providers.RefLogin, Tag: "mysql-users", Value: "orders_a@%"},
			{Kind: providers.RefLogin, Tag: "mysql-users", Value: "orders_b@%"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.Validate(tc.tags); err != nil {
				t.Fatal(err)
			}
			if got := p.References(tc.tags); !slices.Equal(got, tc.want) {
				t.Fatalf("References:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
	if refs := p.References(tags("ProviderAddress", "")); refs != nil {
		t.Fatalf("References of invalid tags: %v", refs)
	}
}
