package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers/awsiam/iamtest"
)

// TestE2EAWSIAMThroughTheHandler: the built binary rotates an IAM user's access key against a local
// IAM/STS that follows the Query API and checks every SigV4 signature: the sweep creates the new key and
// verifies it with STS, the old key keeps working through the grace period, and the sweep after it
// deactivates the old key; the operator's bindings allow exactly this admin secret, account, user and
// endpoint.
func TestE2EAWSIAMThroughTheHandler(t *testing.T) {
	const account, appUser, adminUser = "123456789012", "app-orders", "kvrotator-admin"
	srv := iamtest.NewServerWith(iamtest.Config{Account: account})
	t.Cleanup(srv.Close)
	srv.AddUser(adminUser, "/")
	srv.AddUser(appUser, "/apps/")
	srv.Grant(adminUser, []string{appUser})
	admin := srv.AddKey(adminUser)
	current := srv.AddKeyAt(appUser, time.Now().Add(-48*time.Hour))

	binds := filepath.Join(t.TempDir(), "bindings.json")
	if err := os.WriteFile(binds, fmt.Appendf(nil, `{"bindings":[{"name":"aws-apps","secrets":["%s/app-*"],"provider":"aws-iam",
		"allow":{"secret":["aws-admin"],"account":[%q],"login":[%q],"url":[%q]}}]}`, timingVault, account, appUser, srv.URL), 0o644); err != nil {
		t.Fatal(err)
	}
	x := startTimingE2E(t, "KVROTATOR_BINDINGS="+binds, "KVROTATOR_GRACE_HOURS=1")
	x.seed("aws-admin", admin.Pair(), 365*24*time.Hour, nil)
	x.seed("app-orders-key", current.Pair(), 5*24*time.Hour, map[string]string{"rotation-provider": "aws-iam",
		"aws-iam-user": appUser, "aws-iam-account": account, "aws-iam-admin-secret": "aws-admin",
		"aws-iam-url": srv.URL, "aws-iam-sts-url": srv.URL, "CredentialId": current.ID})

	x.sweep()
	pair, id := x.latest("app-orders-key")
	x.values = append(x.values, pair)
	k, ok := srv.Key(id)
	switch {
	case id == current.ID || !ok || k.User != appUser || pair != k.Pair() || !srv.Works(k.ID, k.Secret):
		t.Fatalf("the vault's new key (%s) is not a working key of %s\n%s", id, appUser, x.host.Output())
	case !srv.Works(current.ID, current.Secret):
		t.Fatal("the old key stopped working before its grace period")
	}

	x.advance(2 * time.Hour)
	x.sweep()
	old, _ := srv.Key(current.ID)
	switch {
	case old.Status != "Inactive" || srv.Works(current.ID, current.Secret):
		t.Fatalf("the old key still works after the grace period (%s)\n%s", old.Status, x.host.Output())
	case !srv.Works(k.ID, k.Secret):
		t.Fatal("the new key was revoked")
	}
	x.values = append(x.values, current.Secret, admin.Secret)
}
