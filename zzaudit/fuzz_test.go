package zzaudit_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/azurekeys"
	"github.com/kvrotator/kvrotator/providers/entraapp"
	"github.com/kvrotator/kvrotator/providers/postgres"
	"github.com/kvrotator/kvrotator/providers/random"
	"github.com/kvrotator/kvrotator/providers/sendgrid"
	"github.com/kvrotator/kvrotator/providers/webhook"
	"github.com/kvrotator/kvrotator/rotation"
)

var names = []string{"rotation-provider", "CredentialId", "ProviderAddress", "ValidityPeriodDays", "rotation-grace-hours",
	"sendgrid-admin-secret", "sendgrid-api-url", "sendgrid-scopes", "sendgrid-on-behalf-of",
	"webhook-url", "webhook-signing-secret", "webhook-timeout-seconds",
	"postgres-users", "postgres-admin-user", "postgres-admin-secret", "postgres-sslmode", "postgres-format",
	"entra-app-id", "entra-tenant-id", "entra-secret-lifetime-days", "azure-keys-format", "azure-keys-verify", "azure-keys-api-version",
	"random-length", "random-alphabet"}
var vals = []string{"", " ", "a", "0", "-1", "99999999999999999999", "https://x", "http://127.0.0.1:1", "https://[::1]:0/a/..", "a,b", ",", "a,a",
	"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a",
	"/subscriptions/x/resourceGroups/g/providers/Microsoft.ServiceBus/namespaces/n/authorizationRules/r",
	"key1", "key2", "primary", "db:5432/x", "postgres://[::1]:5432/x", "[fe80::1%25eth0]:1/x", "00000000-0000-0000-0000-000000000000",
	"verify-full", "disable", "connection-string", "\x00", "é", "SG.a.b", "10", "365", "0", "64", "abc", "[", "*", "%zz"}

func TestZZFuzz(t *testing.T) {
	ps := []providers.Provider{azurekeys.New(), entraapp.New(), postgres.New(), random.New(), sendgrid.New(), webhook.New()}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300000; i++ {
		tags := map[string]string{}
		for j := r.IntN(8); j >= 0; j-- {
			n := names[r.IntN(len(names))]
			if r.IntN(5) == 0 {
				n = string(append([]byte(nil), n...))
				b := []byte(n)
				b[0] ^= 0x20
				n = string(b)
			}
			v := vals[r.IntN(len(vals))]
			if r.IntN(4) == 0 {
				v = v + vals[r.IntN(len(vals))]
			}
			tags[n] = v
		}
		_, _ = rotation.ParsePolicy(tags, rotation.Defaults{Validity: 90 * 24 * time.Hour, Grace: time.Hour, NearExpiryLead: 30 * 24 * time.Hour})
		for _, p := range ps {
			pp := providers.Params(tags)
			func() {
				defer func() {
					if x := recover(); x != nil {
						t.Fatalf("panic %T %v on %q", p, x, tags)
					}
				}()
				if p.Validate(pp) == nil {
					_ = p.References(pp)
				}
			}()
		}
	}
}
