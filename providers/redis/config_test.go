package redis_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/redis"
)

// tags are a valid secret's tags, with the changes applied ("" deletes a tag).
func tags(changes ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":  "redis",
		"ProviderAddress":    "redis.example.com:6379",
		"redis-users":        "cache_a,cache_b",
		"CredentialId":       "cache_a",
		"redis-admin-user":   "rotator",
		"redis-admin-secret": "cache-redis-rotator",
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
		{name: "rediss URL", tags: tags("ProviderAddress", "rediss://redis.example.com:6380")},
		{name: "rediss URL with a trailing slash", tags: tags("ProviderAddress", "rediss://redis.example.com/")},
		{name: "upper-case scheme", tags: tags("ProviderAddress", "REDISS://redis.example.com")},
		{name: "no port", tags: tags("ProviderAddress", "redis.example.com")},
		{name: "IPv4", tags: tags("ProviderAddress", "10.0.0.5:6379")},
		{name: "IPv6", tags: tags("ProviderAddress", "[2001:db8::5]:6379")},
		{name: "redis:// on 127.0.0.1", tags: tags("ProviderAddress", "redis://127.0.0.1:6379")},
		{name: "redis:// on localhost", tags: tags("ProviderAddress", "redis://localhost")},
		{name: "redis:// on ::1", tags: tags("ProviderAddress", "redis://[::1]:6380")},
		{name: "url format", tags: tags("redis-format", "URL")},
		{name: "password format", tags: tags("redis-format", "password")},
		{name: "persist none", tags: tags("redis-persist", "none")},
		{name: "persist acl-save", tags: tags("redis-persist", "ACL-SAVE")},
		{name: "tag names in any case", tags: tags("redis-users", "", "Redis-Users", "cache_a,cache_b")},
		{name: "spaces around users", tags: tags("redis-users", " cache_a , cache_b ")},
		{name: "CredentialId the second user", tags: tags("CredentialId", "cache_b")},

		{name: "address missing", tags: tags("ProviderAddress", ""), wantTags: []string{"ProviderAddress"}, wantIn: "missing"},
		{name: "address with user and password", tags: tags("ProviderAddress", "rediss://admin:hunter2@redis.example.com"),
			wantTags: []string{"ProviderAddress"}, wantIn: "user information"},
		{name: "address with a password only", tags: tags("ProviderAddress", "rediss://:hunter2@redis.example.com"), wantTags: []string{"ProviderAddress"}, wantIn: "user information"},
		{name: "address with a query", tags: tags("ProviderAddress", "redis.example.com?password=hunter2"), wantTags: []string{"ProviderAddress"}, wantIn: "query"},
		{name: "address with a database", tags: tags("ProviderAddress", "rediss://redis.example.com:6379/0"), wantTags: []string{"ProviderAddress"}, wantIn: "database"},
		{name: "address with a bad port", tags: tags("ProviderAddress", "redis.example.com:99999"), wantTags: []string{"ProviderAddress"}, wantIn: "port"},
		{name: "address with an empty port", tags: tags("ProviderAddress", "redis.example.com:"), wantTags: []string{"ProviderAddress"}, wantIn: "port"},
		{name: "address with another scheme", tags: tags("ProviderAddress", "unix:///var/run/redis.sock"), wantTags: []string{"ProviderAddress"}, wantIn: "scheme"},
		{name: "address with several hosts", tags: tags("ProviderAddress", "rediss://a.example.com,b.example.com"), wantTags: []string{"ProviderAddress"}},
		{name: "address a path", tags: tags("ProviderAddress", "/var/run/redis.sock"), wantTags: []string{"ProviderAddress"}},
		{name: "plain text to a remote host", tags: tags("ProviderAddress", "redis://redis.example.com:6379"),
			wantTags: []string{"ProviderAddress"}, wantIn: "loopback"},
		{name: "plain text to a private address", tags: tags("ProviderAddress", "redis://10.0.0.5"), wantTags: []string{"ProviderAddress"}, wantIn: "loopback"},
		{name: "users missing", tags: tags("redis-users", ""), wantTags: []string{"redis-users"}, wantIn: "missing"},
		{name: "one user", tags: tags("redis-users", "cache_a"), wantTags: []string{"redis-users"}, wantIn: "name two"},
		{name: "three users", tags: tags("redis-users", "a,b,c"), wantTags: []string{"redis-users"}, wantIn: "names 3 user(s)"},
		{name: "same user twice", tags: tags("redis-users", "cache_a,cache_a"), wantTags: []string{"redis-users"}, wantIn: "same user"},
		{name: "empty user", tags: tags("redis-users", "cache_a,"), wantTags: []string{"redis-users"}},
		{name: "a user that reads as a rule", tags: tags("redis-users", "cache_a,>pw"), wantTags: []string{"redis-users"}},
		{name: "a user with a space", tags: tags("redis-users", "cache_a,cache b"), wantTags: []string{"redis-users"}},
		{name: "CredentialId missing", tags: tags("CredentialId", ""), wantTags: []string{"CredentialId"}, wantIn: "missing"},
		{name: "CredentialId an unknown user", tags: tags("CredentialId", "cache_c"), wantTags: []string{"CredentialId"}, wantIn: "not one of the users"},
		{name: "CredentialId in other case", tags: tags("CredentialId", "CACHE_A"), wantTags: []string{"CredentialId"}, wantIn: "case-sensitive"},
		{name: "admin user missing", tags: tags("redis-admin-user", ""), wantTags: []string{"redis-admin-user"}, wantIn: "missing"},
		{name: "admin user a rule", tags: tags("redis-admin-user", "+@all"), wantTags: []string{"redis-admin-user"}},
		{name: "admin user is a rotated user", tags: tags("redis-admin-user", "cache_b"), wantTags: []string{"redis-admin-user"}, wantIn: "separate admin"},
		{name: "admin secret missing", tags: tags("redis-admin-secret", ""), wantTags: []string{"redis-admin-secret"}, wantIn: "missing"},
		{name: "admin secret holds a password", tags: tags("redis-admin-secret", "hunter2!"), wantTags: []string{"redis-admin-secret"}, wantIn: "never holds the password"},
		{name: "bad format", tags: tags("redis-format", "connection-string"), wantTags: []string{"redis-format"}},
		{name: "bad persist", tags: tags("redis-persist", "config-rewrite"), wantTags: []string{"redis-persist"}},
		{name: "unknown redis- tag", tags: tags("redis-user", "cache_a"), wantTags: []string{"redis-user"}, wantIn: "unknown tag"},
		{name: "a tag twice in other case", tags: tags("REDIS-USERS", "cache_a,cache_b"), wantTags: []string{"redis-users"}, wantIn: "different letter case"},
		{name: "everything wrong at once", tags: providers.Params{"rotation-provider": "redis"},
			wantTags: []string{"ProviderAddress", "redis-users", "redis-admin-user", "redis-admin-secret"}},
	}
	p := redis.New()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Validate(tc.tags)
			if len(tc.wantTags) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if refs := p.References(tc.tags); len(refs) != 5 {
					t.Fatalf("References: %v", refs)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			var got []string
			for _, e := range flatten(err) {
				var ce *providers.ConfigError
				if !errors.As(e, &ce) {
					t.Fatalf("not a ConfigError: %v", e)
				}
				got = append(got, strings.ToLower(ce.Tag))
			}
			for _, want := range tc.wantTags {
				if !slices.Contains(got, strings.ToLower(want)) {
					t.Fatalf("errors name %v, want %s: %v", got, want, err)
				}
			}
			if !providers.IsPermanent(err) {
				t.Fatalf("not permanent: %v", err)
			}
			if tc.wantIn != "" && !strings.Contains(err.Error(), tc.wantIn) {
				t.Fatalf("%v does not say %q", err, tc.wantIn)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error repeats a password: %v", err)
			}
		})
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var all []error
		for _, e := range j.Unwrap() {
			all = append(all, flatten(e)...)
		}
		return all
	}
	return []error{err}
}

func TestReferences(t *testing.T) {
	p := redis.New()
	want := []providers.Reference{
		{Kind: providers.RefServer, Tag: "ProviderAddress", Value: "redis.example.com:6379"},
		{Kind: providers.RefSecret, Tag: "redis-admin-secret", Value: "cache-redis-rotator"},
		{Kind: providers.RefLogin, Tag: "redis-admin-user", Value: "rotator"},
		{Kind: providers.RefLogin, Tag: "redis-users", Value: "cache_a"},
		{Kind: providers.RefLogin, Tag: "redis-users", Value: "cache_b"},
	}
	// Every spelling of the address is the same reference: host:port, the port written out.
	for _, addr := range []string{"redis.example.com", "redis.example.com:6379", "rediss://redis.example.com", "rediss://redis.example.com:6379/"} {
		if got := p.References(tags("ProviderAddress", addr)); !slices.Equal(got, want) {
			t.Fatalf("%s: References = %v, want %v", addr, got, want)
		}
	}
	if got := p.References(tags("ProviderAddress", "[2001:db8::5]:6380")); got[0].Value != "[2001:db8::5]:6380" {
		t.Fatalf("IPv6: %v", got[0])
	}
	if got := p.References(tags("ProviderAddress", "redis://127.0.0.1")); got[0].Value != "127.0.0.1:6379" {
		t.Fatalf("loopback: %v", got[0])
	}
	if got := p.References(tags("redis-users", "")); got != nil {
		t.Fatalf("References of invalid tags: %v", got)
	}
	if p.Shape() != providers.ShapeAlternating {
		t.Fatal("shape")
	}
}
