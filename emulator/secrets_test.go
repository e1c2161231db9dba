package emulator_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
)

func TestSetGetUpdateThroughSDK(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t, srv, "myvault")
	ctx := ctx(t)
	exp := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	nbf := time.Now().Add(-time.Hour).Truncate(time.Second)

	set, err := c.SetSecret(ctx, "api-key", azsecrets.SetSecretParameters{
		Value:       to("v1-value"),
		ContentType: to("text/plain"),
		Tags:        map[string]*string{"rotation-provider": to("random")},
		SecretAttributes: &azsecrets.SecretAttributes{
			Expires: &exp, NotBefore: &nbf,
		},
	}, nil)
	if err != nil {
		t.Fatalf("SetSecret: %v", err)
	}
	if set.ID == nil || set.ID.Name() != "api-key" || len(set.ID.Version()) != 32 {
		t.Fatalf("id %v: want name api-key and a 32-char version", set.ID)
	}
	if !strings.HasPrefix(string(*set.ID), srv.VaultURL("myvault")+"/secrets/api-key/") {
		t.Fatalf("id %s does not use the vault URL", *set.ID)
	}
	if *set.Value != "v1-value" || *set.ContentType != "text/plain" || !set.Attributes.Expires.Equal(exp) || !set.Attributes.NotBefore.Equal(nbf) {
		t.Fatalf("set response does not echo what was set: %+v", set.Attributes)
	}
	if *set.Attributes.RecoveryLevel != "Recoverable+Purgeable" || *set.Attributes.RecoverableDays != 90 || !*set.Attributes.Enabled {
		t.Fatalf("attributes: %+v", set.Attributes)
	}
	v1 := set.ID.Version()

	// Latest (the SDK sends the trailing-slash form for an empty version), and by version.
	latest, err := c.GetSecret(ctx, "api-key", "", nil)
	if err != nil || *latest.Value != "v1-value" || latest.ID.Version() != v1 {
		t.Fatalf("GetSecret latest: %v %v", err, latest.ID)
	}
	// Names are case-insensitive.
	if got, err := c.GetSecret(ctx, "API-KEY", v1, nil); err != nil || *got.Value != "v1-value" {
		t.Fatalf("GetSecret by version, other case: %v", err)
	}

	set2, err := c.SetSecret(ctx, "api-key", azsecrets.SetSecretParameters{Value: to("v2-value")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	latest, _ = c.GetSecret(ctx, "api-key", "", nil)
	if latest.ID.Version() != set2.ID.Version() || *latest.Value != "v2-value" {
		t.Fatalf("latest is not the newest version")
	}
	old, _ := c.GetSecret(ctx, "api-key", v1, nil)
	if *old.Value != "v1-value" {
		t.Fatalf("old version changed")
	}

	// Update only exp: everything else stays; the response has no value.
	newExp := exp.Add(24 * time.Hour)
	upd, err := c.UpdateSecretProperties(ctx, "api-key", v1, azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Expires: &newExp},
	}, nil)
	if err != nil {
		t.Fatalf("UpdateSecretProperties: %v", err)
	}
	if upd.Value != nil {
		t.Fatalf("update response carries a value")
	}
	if !upd.Attributes.Expires.Equal(newExp) || !upd.Attributes.NotBefore.Equal(nbf) || *upd.ContentType != "text/plain" || *upd.Tags["rotation-provider"] != "random" || !*upd.Attributes.Enabled {
		t.Fatalf("update changed more than exp: %+v", upd)
	}
	// Passing read-only attributes back (as callers do with a GET's attributes) is accepted.
	if _, err := c.UpdateSecretProperties(ctx, "api-key", "", azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: latest.Attributes, Tags: map[string]*string{"a": to("b")},
	}, nil); err != nil {
		t.Fatalf("update with read-only attributes: %v", err)
	}
	if got, _ := c.GetSecret(ctx, "api-key", "", nil); len(got.Tags) != 1 || *got.Tags["a"] != "b" {
		t.Fatalf("tags were not replaced: %v", got.Tags)
	}

	// Disabled: GET answers 403 Forbidden / SecretDisabled; PATCH re-enables.
	if _, err := c.UpdateSecretProperties(ctx, "api-key", v1, azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: to(false)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSecret(ctx, "api-key", v1, nil)
	respErr(t, err, http.StatusForbidden, "Forbidden")
	r := raw(t, srv, "GET", "/secrets/api-key/"+v1+"?api-version=7.5", systemToken(t, srv), nil)
	if code, inner := r.errorCode(t); r.Status != 403 || code != "Forbidden" || inner != "SecretDisabled" {
		t.Fatalf("disabled GET: %d %s/%s", r.Status, code, inner)
	}
	if _, err := c.GetSecret(ctx, "api-key", "", nil); err != nil {
		t.Fatalf("latest (enabled) version must still be readable: %v", err)
	}

	// Missing secret and version.
	_, err = c.GetSecret(ctx, "nope", "", nil)
	respErr(t, err, 404, "SecretNotFound")
	_, err = c.GetSecret(ctx, "api-key", strings.Repeat("0", 32), nil)
	respErr(t, err, 404, "SecretNotFound")

	// Versions list: ids with version, no values.
	var versions []string
	pager := c.NewListSecretPropertiesVersionsPager("api-key", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			versions = append(versions, p.ID.Version())
		}
	}
	if len(versions) != 2 {
		t.Fatalf("versions: %v", versions)
	}
}

// TestNbfExpDoNotBlockGet: like Key Vault, nbf in the future and exp in the past are informational.
func TestNbfExpDoNotBlockGet(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t, srv, "myvault")
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if _, err := c.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("x"),
		SecretAttributes: &azsecrets.SecretAttributes{Expires: &past, NotBefore: &future}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(ctx(t), "s", "", nil); err != nil {
		t.Fatalf("GET outside the nbf/exp window must work: %v", err)
	}
}

func TestListPagingAcrossPages(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t, srv, "myvault")
	const n = 60
	for i := range n {
		if _, err := c.SetSecret(ctx(t), fmt.Sprintf("secret-%02d", i), azsecrets.SetSecretParameters{Value: to("v")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	pages := 0
	pager := c.NewListSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		if len(page.Value) > 25 {
			t.Fatalf("page of %d items", len(page.Value))
		}
		for _, p := range page.Value {
			if p.ID.Version() != "" {
				t.Fatalf("list item id carries a version: %s", *p.ID)
			}
			names = append(names, p.ID.Name())
		}
	}
	if pages != 3 || len(names) != n {
		t.Fatalf("got %d names in %d pages, want %d in 3", len(names), pages, n)
	}
	seen := map[string]bool{}
	for _, nm := range names {
		if seen[nm] {
			t.Fatalf("%s listed twice", nm)
		}
		seen[nm] = true
	}

	// Wire: absolute https nextLink carrying api-version; no values in items; null nextLink at the end.
	tok := systemToken(t, srv)
	r := raw(t, srv, "GET", "/secrets?api-version=2026-04-01", tok, nil)
	var page struct {
		Value    []map[string]any `json:"value"`
		NextLink *string          `json:"nextLink"`
	}
	if err := json.Unmarshal(r.Body, &page); err != nil || r.Status != 200 {
		t.Fatalf("list: %d %v", r.Status, err)
	}
	if page.NextLink == nil {
		t.Fatal("no nextLink on a full first page")
	}
	u, err := url.Parse(*page.NextLink)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Query().Get("api-version") != "2026-04-01" {
		t.Fatalf("nextLink %q must be absolute https with api-version", *page.NextLink)
	}
	for _, item := range page.Value {
		if _, ok := item["value"]; ok {
			t.Fatal("list item carries a value")
		}
	}
	r = raw(t, srv, "GET", "/secrets?api-version=7.4&maxresults=30", tok, nil)
	if code, _ := r.errorCode(t); r.Status != 400 || code != "BadParameter" {
		t.Fatalf("maxresults 30: %d %s", r.Status, code)
	}
}

func TestSoftDeleteRecoverAndPurge(t *testing.T) {
	srv := start(t, func(c *emulator.Config) { c.Vaults[0].RecoverableDays = 7 })
	c := newClient(t, srv, "myvault")
	ctx := ctx(t)
	exp := time.Now().Add(48 * time.Hour)
	set, err := c.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to("pw1"), Tags: map[string]*string{"k": to("v")},
		SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx, "other", azsecrets.SetSecretParameters{Value: to("x")}, nil); err != nil {
		t.Fatal(err)
	}

	del, err := c.DeleteSecret(ctx, "db-password", nil)
	if err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	if del.ID.Version() != set.ID.Version() || del.Value != nil {
		t.Fatalf("delete answers the latest version's id and no value: %v", del.ID)
	}
	if del.RecoveryID == nil || !strings.HasSuffix(*del.RecoveryID, "/deletedsecrets/db-password") {
		t.Fatalf("recoveryId: %v", del.RecoveryID)
	}
	if del.ScheduledPurgeDate.Sub(*del.DeletedDate) != 7*24*time.Hour {
		t.Fatalf("scheduledPurgeDate - deletedDate = %v, want 7 days", del.ScheduledPurgeDate.Sub(*del.DeletedDate))
	}
	_, err = c.GetSecret(ctx, "db-password", "", nil)
	respErr(t, err, 404, "SecretNotFound")

	// The name cannot be reused while deleted.
	_, err = c.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to("pw2")}, nil)
	respErr(t, err, http.StatusConflict, "Conflict")
	r := raw(t, srv, "PUT", "/secrets/db-password?api-version=7.5", systemToken(t, srv), []byte(`{"value":"x"}`))
	if _, inner := r.errorCode(t); inner != "ObjectIsDeletedButRecoverable" {
		t.Fatalf("inner error %q", inner)
	}

	got, err := c.GetDeletedSecret(ctx, "db-password", nil)
	if err != nil || got.ID.Version() != set.ID.Version() || got.Value != nil {
		t.Fatalf("GetDeletedSecret: %v", err)
	}
	var deleted []string
	pager := c.NewListDeletedSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Value {
			deleted = append(deleted, d.ID.Name())
			if d.RecoveryID == nil || d.DeletedDate == nil {
				t.Fatal("deleted item without recoveryId/deletedDate")
			}
		}
	}
	if !reflect.DeepEqual(deleted, []string{"db-password"}) {
		t.Fatalf("deleted list: %v", deleted)
	}

	rec, err := c.RecoverDeletedSecret(ctx, "db-password", nil)
	if err != nil {
		t.Fatalf("RecoverDeletedSecret: %v", err)
	}
	if !reflect.DeepEqual(rec.Attributes, set.Attributes) {
		t.Fatalf("recover changed attributes: %+v vs %+v", rec.Attributes, set.Attributes)
	}
	back, err := c.GetSecret(ctx, "db-password", "", nil)
	if err != nil || *back.Value != "pw1" || *back.Tags["k"] != "v" {
		t.Fatalf("recovered secret: %v", err)
	}
	_, err = c.GetDeletedSecret(ctx, "db-password", nil)
	respErr(t, err, 404, "SecretNotFound")

	// Delete → purge (204) → gone; the name is free again.
	if _, err := c.DeleteSecret(ctx, "db-password", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedSecret(ctx, "db-password", nil); err != nil {
		t.Fatalf("PurgeDeletedSecret: %v", err)
	}
	_, err = c.GetDeletedSecret(ctx, "db-password", nil)
	respErr(t, err, 404, "SecretNotFound")
	_, err = c.PurgeDeletedSecret(ctx, "db-password", nil)
	respErr(t, err, 404, "SecretNotFound")
	if _, err := c.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to("new")}, nil); err != nil {
		t.Fatalf("set after purge: %v", err)
	}

	// Retention passes on the vault clock: the deleted secret is purged automatically.
	if _, err := c.DeleteSecret(ctx, "other", nil); err != nil {
		t.Fatal(err)
	}
	srv.Advance(8 * 24 * time.Hour)
	_, err = c.GetDeletedSecret(ctx, "other", nil)
	respErr(t, err, 404, "SecretNotFound")
}

func TestPurgeProtection(t *testing.T) {
	srv := start(t, func(c *emulator.Config) { c.Vaults[0].PurgeProtection = true })
	c := newClient(t, srv, "myvault")
	if _, err := c.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecret(ctx(t), "s", nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.PurgeDeletedSecret(ctx(t), "s", nil)
	respErr(t, err, http.StatusForbidden, "Forbidden")
}

// Values distinctive enough that random ciphertext never contains them by chance (two-letter values
// did, about once in a hundred runs).
const (
	backupValue1 = "backup-value-one-6c1f0e9a"
	backupValue2 = "backup-value-two-3b8d27f4"
)

func TestBackupRestoreIntoFreshVault(t *testing.T) {
	srv := start(t, func(c *emulator.Config) {
		c.Vaults = append(c.Vaults, emulator.VaultConfig{Name: "fresh"})
	})
	src := newClient(t, srv, "myvault")
	ctx := ctx(t)
	first, err := src.SetSecret(ctx, "signing-key", azsecrets.SetSecretParameters{Value: to(backupValue1), Tags: map[string]*string{"t": to("1")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := src.SetSecret(ctx, "signing-key", azsecrets.SetSecretParameters{Value: to(backupValue2)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bk, err := src.BackupSecret(ctx, "signing-key", nil)
	if err != nil {
		t.Fatalf("BackupSecret: %v", err)
	}
	if len(bk.Value) == 0 {
		t.Fatal("empty backup")
	}
	// Wire: unpadded base64url, and the blob does not reveal the values.
	r := raw(t, srv, "POST", "/secrets/signing-key/backup?api-version=7.5", systemToken(t, srv), nil)
	var blob struct{ Value string }
	if err := json.Unmarshal(r.Body, &blob); err != nil || strings.ContainsAny(blob.Value, "=+/") {
		t.Fatalf("backup blob must be unpadded base64url: %q", blob.Value)
	}
	dec, _ := base64.RawURLEncoding.DecodeString(blob.Value)
	if strings.Contains(string(dec), backupValue1) || strings.Contains(string(dec), backupValue2) {
		t.Fatal("backup blob reveals a value")
	}

	// Restoring where the name exists is a conflict.
	_, err = src.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: bk.Value}, nil)
	respErr(t, err, http.StatusConflict, "Conflict")

	dst := newClient(t, srv, "fresh")
	res, err := dst.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: bk.Value}, nil)
	if err != nil {
		t.Fatalf("RestoreSecret: %v", err)
	}
	if res.ID.Version() != second.ID.Version() || res.Value != nil {
		t.Fatalf("restore must keep version ids: %s vs %s", res.ID.Version(), second.ID.Version())
	}
	old, err := dst.GetSecret(ctx, "signing-key", first.ID.Version(), nil)
	if err != nil || *old.Value != backupValue1 || *old.Tags["t"] != "1" || !old.Attributes.Created.Equal(*first.Attributes.Created) {
		t.Fatalf("restored old version: %v", err)
	}
	// A corrupt blob is a 400.
	_, err = dst.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: []byte("not a backup")}, nil)
	respErr(t, err, 400, "BadParameter")
}

func TestMultipleVaultsByHostAndPort(t *testing.T) {
	srv := start(t, func(c *emulator.Config) {
		c.Vaults = append(c.Vaults, emulator.VaultConfig{Name: "second", Addr: "127.0.0.1:0"})
	})
	a := newClient(t, srv, "myvault")
	b := newClient(t, srv, "second")
	if _, err := a.SetSecret(ctx(t), "shared-name", azsecrets.SetSecretParameters{Value: to("in-a")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetSecret(ctx(t), "shared-name", azsecrets.SetSecretParameters{Value: to("in-b")}, nil); err != nil {
		t.Fatal(err)
	}
	ga, _ := a.GetSecret(ctx(t), "shared-name", "", nil)
	gb, _ := b.GetSecret(ctx(t), "shared-name", "", nil)
	if *ga.Value != "in-a" || *gb.Value != "in-b" {
		t.Fatal("vaults share state")
	}
	// The dedicated port reaches the same vault, with ids on that address.
	portURL := srv.VaultAddrURL("second")
	if !strings.HasPrefix(portURL, "https://127.0.0.1:") {
		t.Fatalf("dedicated URL %q", portURL)
	}
	viaPort, err := azsecrets.NewClient(portURL, managedIdentity(t, srv, ""), clientOptions(srv))
	if err != nil {
		t.Fatal(err)
	}
	gp, err := viaPort.GetSecret(ctx(t), "shared-name", "", nil)
	if err != nil || *gp.Value != "in-b" || !strings.HasPrefix(string(*gp.ID), portURL+"/secrets/") {
		t.Fatalf("via port: %v", err)
	}
	// An unknown vault host is refused with a clear error.
	r := raw(t, srv, "GET", strings.Replace(srv.VaultURL("myvault"), "myvault", "nosuchvault", 1)+"/secrets?api-version=7.5", systemToken(t, srv), nil)
	if code, _ := r.errorCode(t); r.Status != 404 || code != "VaultNotFound" {
		t.Fatalf("unknown vault: %d %s", r.Status, code)
	}
}

func TestNoAuthDevMode(t *testing.T) {
	srv := start(t, func(c *emulator.Config) { c.NoAuth = true })
	if !strings.HasPrefix(srv.VaultURL("myvault"), "http://") {
		t.Fatalf("no-auth URL %s", srv.VaultURL("myvault"))
	}
	c, err := azsecrets.NewClient(srv.VaultURL("myvault"), nil, clientOptions(srv))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("x")}, nil); err != nil {
		t.Fatalf("SetSecret without credential: %v", err)
	}
	got, err := c.GetSecret(ctx(t), "s", "", nil)
	if err != nil || *got.Value != "x" {
		t.Fatalf("GetSecret: %v", err)
	}
}
