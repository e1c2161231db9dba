package entraappcert_test

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/entraappcert"
	"github.com/kvrotator/kvrotator/providers/entraappcert/entraappcerttest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// The provider against the local Graph and Entra ID directly (end to end through the engine is
// e2e_test.go).

// Create adds one certificate named for the idempotency key with a proof signed by the current
// certificate, exactly as Graph documents the proof; the value loads with azidentity in the tag's
// format; Verify signs in with it through propagation; Revoke removes the old key with a proof signed
// by the new certificate.
func TestCreateVerifyRevoke(t *testing.T) {
	for _, format := range []string{"", entraappcert.FormatPEM, entraappcert.FormatPKCS12} {
		t.Run("format "+format, func(t *testing.T) {
			f := newFixture(t)
			f.srv.SetPropagation(2)
			p := f.provider()
			req := f.request()
			if format != "" {
				req.Params[entraappcert.TagFormat] = format
			}
			start := time.Now()
			cred, err := p.Create(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			wantCT := entraappcert.ContentTypePEM
			if format == entraappcert.FormatPKCS12 {
				wantCT = entraappcert.ContentTypePKCS12
			}
			if cred.ContentType != wantCT {
				t.Fatalf("content type %q, want %q", cred.ContentType, wantCT)
			}
			cert := load(t, cred.Value, cred.ContentType)
			mine := f.kvrotatorKeys(idemKey)
			if len(mine) != 1 || mine[0].KeyID != cred.CredentialID || !bytes.Equal(mine[0].Cert.Raw, cert.Raw) {
				t.Fatalf("want one key named for the rotation, the value's certificate: %+v", mine)
			}
			if d := cred.ExpiresAt.Sub(start); d < 89*24*time.Hour || d > 91*24*time.Hour || !cred.ExpiresAt.Equal(cert.NotAfter) {
				t.Fatalf("expires %v (certificate %v), want ValidityPeriodDays=90", cred.ExpiresAt, cert.NotAfter)
			}
			if cert.Subject.CommonName != entraappcert.DisplayName(idemKey) || cert.NotBefore.After(start) {
				t.Fatalf("certificate %s valid from %v", cert.Subject, cert.NotBefore)
			}

			// The proof, as Graph's addKey page and the roll-key how-to document it.
			proofs := f.srv.Proofs()
			if len(proofs) != 1 {
				t.Fatalf("%d proofs", len(proofs))
			}
			pr := proofs[0]
			if pr.Route != entraappcerttest.AddKey || pr.Signer != entraappcerttest.Thumbprint(f.initialCert) || pr.Audience != entraappcert.ProofAudience ||
				pr.Issuer != f.objectID || pr.Expires.Sub(pr.NotBefore) != 10*time.Minute || pr.Header["alg"] != "RS256" || pr.Header["typ"] != "JWT" ||
				pr.Header["kid"] != entraappcerttest.Thumbprint(f.initialCert) {
				t.Fatalf("proof %+v", pr)
			}

			// Verification: twice "not propagated yet" (transient), then the sign-in works.
			for range 2 {
				err := p.Verify(ctx, req, cred)
				e := httpxtest.Transient[*entraappcert.Error](t, err)
				if e.SubCode != "AADSTS700027" {
					t.Fatalf("got %v", err)
				}
				f.clean(t, err, cred.Value.Reveal())
			}
			if err := p.Verify(ctx, req, cred); err != nil {
				t.Fatal(err)
			}
			if as := f.srv.Assertions(); len(as) != 1 || as[0].Signer != entraappcerttest.Thumbprint(cert) || as[0].ClientID != f.appID {
				t.Fatalf("assertions %+v", as)
			}

			// After the grace period: the old key goes, with a proof signed by the new certificate.
			if err := p.Revoke(ctx, after(req, cred), f.initialID); err != nil {
				t.Fatal(err)
			}
			if ids := f.keyIDs(); len(ids) != 1 || ids[0] != cred.CredentialID {
				t.Fatalf("keys %v", ids)
			}
			if pr := f.srv.Proofs()[1]; pr.Route != entraappcerttest.RemoveKey || pr.Signer != entraappcerttest.Thumbprint(cert) {
				t.Fatalf("removeKey proof %+v", pr)
			}
			// Again: already gone is success.
			if err := p.Revoke(ctx, after(req, cred), f.initialID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The next rotation reads the value the previous one wrote, in either format, and signs its proof
// with it; the format tag may change between rotations.
func TestSecondRotationSignsWithTheFirstsCertificate(t *testing.T) {
	f := newFixture(t)
	p := f.provider()
	req := f.request()
	req.Params[entraappcert.TagFormat] = entraappcert.FormatPKCS12
	first, err := p.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	next := after(req, first)
	next.Retired, next.IdempotencyKey = providers.Value{}, "kvr-1111111111111111"
	next.Params[entraappcert.TagFormat] = entraappcert.FormatPEM
	second, err := p.Create(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if second.ContentType != entraappcert.ContentTypePEM {
		t.Fatal(second.ContentType)
	}
	firstCert := load(t, first.Value, first.ContentType)
	if pr := f.srv.Proofs(); pr[len(pr)-1].Signer != entraappcerttest.Thumbprint(firstCert) {
		t.Fatal("the second addKey's proof is not signed by the first rotation's certificate")
	}
	if len(f.keyIDs()) != 3 {
		t.Fatalf("keys %v", f.keyIDs())
	}
}

// A retry under the same idempotency key after an attempt that added a key and died (whose private
// key is lost with it) removes that orphan and adds a new certificate: never two keys for one key.
func TestCreateReplacesAnOrphan(t *testing.T) {
	f := newFixture(t)
	p := f.provider()
	lost, err := p.Create(ctx, f.request()) // the process dies before writing lost.Value anywhere
	if err != nil {
		t.Fatal(err)
	}
	cred, err := p.Create(ctx, f.request())
	if err != nil {
		t.Fatal(err)
	}
	mine := f.kvrotatorKeys(idemKey)
	if len(mine) != 1 || mine[0].KeyID != cred.CredentialID || cred.CredentialID == lost.CredentialID {
		t.Fatalf("kvrotator keys %+v", mine)
	}
	if n := f.srv.Calls(entraappcerttest.RemoveKey); n != 1 || len(f.keyIDs()) != 2 {
		t.Fatalf("%d removeKey calls, keys %v", n, f.keyIDs())
	}
}

// When addKey's answer is lost, the error is transient and asks the engine to wait for replication;
// the retry finds the key the lost call added and replaces it.
func TestCreateAfterALostAnswer(t *testing.T) {
	f := newFixture(t)
	p := f.provider(entraappcert.WithReplicationDelay(3 * time.Second))
	f.srv.FailNext(entraappcerttest.AddKey, 1, entraappcerttest.Fault{LoseAnswer: true})
	_, err := p.Create(ctx, f.request())
	e := httpxtest.Transient[*entraappcert.Error](t, err)
	if e.RetryAfter() < 3*time.Second || len(f.kvrotatorKeys(idemKey)) != 1 {
		t.Fatalf("retry after %v, %d keys", e.RetryAfter(), len(f.kvrotatorKeys(idemKey)))
	}
	f.clean(t, err)
	cred, err := p.Create(ctx, f.request())
	if err != nil {
		t.Fatal(err)
	}
	if mine := f.kvrotatorKeys(idemKey); len(mine) != 1 || mine[0].KeyID != cred.CredentialID {
		t.Fatalf("kvrotator keys %+v", mine)
	}
}

// A current value that is not a working certificate of this application is refused before any key is
// added — whatever Graph would say about a proof signed with it.
func TestCreateRefusesACurrentValueThatIsNotACertificateOfTheApp(t *testing.T) {
	f := newFixture(t)
	otherObject, _ := f.srv.AddApp()
	otherCert, otherKey := entraappcerttest.NewCertificate("team b", time.Now().Add(-time.Hour), time.Now().AddDate(0, 0, 60))
	f.srv.SeedKey(otherObject, "team b", otherCert)
	strangerCert, strangerKey := entraappcerttest.NewCertificate("attacker", time.Now().Add(-time.Hour), time.Now().AddDate(0, 0, 60))
	expiredCert, expiredKey := entraappcerttest.NewCertificate("expired", time.Now().AddDate(0, 0, -60), time.Now().Add(-time.Hour))
	expiredID := f.srv.SeedKey(f.objectID, "expired", expiredCert)
	// The application's own certificate, from Graph's listing, paired with the attacker's key.
	stolenCert := entraappcerttest.PEM(f.initialCert, strangerKey)
	stolenCert = stolenCert[strings.Index(stolenCert, "-----BEGIN CERTIFICATE-----"):] + entraappcerttest.PEM(strangerCert, strangerKey)[:strings.Index(entraappcerttest.PEM(strangerCert, strangerKey), "-----BEGIN CERTIFICATE-----")]

	for _, tc := range []struct {
		name, value, credID string
		want                string
		graphCalled         bool
	}{
		{"a client secret", "Abc8Q~client-secret-value-0123456789abcd", f.initialID, "not a PEM file or a base64 PKCS #12", false},
		{"the application's certificate with another private key", stolenCert, f.initialID, "none of its certificates is the certificate of its private key", false},
		{"a certificate the application does not have", entraappcerttest.PEM(strangerCert, strangerKey), "", "is not a certificate of application", true},
		{"another application's certificate", entraappcerttest.PEM(otherCert, otherKey), "", "is not a certificate of application", true},
		{"an expired certificate of the application", entraappcerttest.PEM(expiredCert, expiredKey), expiredID, "is not valid now", true},
		{"the application's certificate, with CredentialId naming another key", f.initialValue, expiredID, "is key credential " + f.initialID, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.keyIDs()
			calls := f.srv.Requests()
			req := f.request()
			req.Current, req.CredentialID = providers.NewValue(tc.value), tc.credID
			req.Params["CredentialId"] = tc.credID
			_, err := f.provider().Create(ctx, req)
			if !providers.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v", err)
			}
			if tc.graphCalled != (f.srv.Requests() > calls) {
				t.Fatalf("Graph called: %v", f.srv.Requests() > calls)
			}
			if f.srv.Calls(entraappcerttest.AddKey)+f.srv.Calls(entraappcerttest.RemoveKey) != 0 || !slices.Equal(f.keyIDs(), before) {
				t.Fatal("a key was added or removed")
			}
			f.clean(t, err, tc.value)
		})
	}
}

// Graph checks the proof too: one it does not accept (here, the other audience one Learn revision
// names) is a permanent failure that says so, and nothing is added.
func TestGraphRefusesTheProof(t *testing.T) {
	f := newFixture(t)
	_, err := f.provider(entraappcert.WithProofAudience("00000003-0000-0000-c000-000000000000")).Create(ctx, f.request())
	e := httpxtest.Permanent[*entraappcert.Error](t, err)
	if e.Status != http.StatusUnauthorized || e.Code != "Authentication_MissingOrMalformed" || !strings.Contains(err.Error(), "proof of possession") {
		t.Fatalf("got %v", err)
	}
	if len(f.keyIDs()) != 1 || !strings.Contains(strings.Join(f.srv.ProofFailures(), ";"), "aud") {
		t.Fatalf("keys %v, proof failures %v", f.keyIDs(), f.srv.ProofFailures())
	}
	f.clean(t, err)
	// An operator whose Graph expects that audience configures it; the stand-in then accepts it.
	f.srv.SetProofAudiences("00000003-0000-0000-c000-000000000000")
	if _, err := f.provider(entraappcert.WithProofAudience("00000003-0000-0000-c000-000000000000")).Create(ctx, f.request()); err != nil {
		t.Fatal(err)
	}
}

// Graph's refusals and failures, classified.
func TestGraphFailures(t *testing.T) {
	t.Run("forbidden", func(t *testing.T) {
		f := newFixture(t)
		f.srv.SetForbidden(f.objectID, true)
		_, err := f.provider().Create(ctx, f.request())
		if e := httpxtest.Permanent[*entraappcert.Error](t, err); e.Status != http.StatusForbidden || !strings.Contains(err.Error(), "Application.ReadWrite.OwnedBy") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("throttled", func(t *testing.T) {
		f := newFixture(t)
		f.srv.FailNext(entraappcerttest.GetApplication, 1, entraappcerttest.Fault{Status: 429, Code: "TooManyRequests", Message: "Too many requests", RetryAfter: "7"})
		_, err := f.provider().Create(ctx, f.request())
		if e := httpxtest.Transient[*entraappcert.Error](t, err); e.RetryAfter() != 7*time.Second {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no such application", func(t *testing.T) {
		f := newFixture(t)
		req := f.request()
		req.Params[entraappcert.TagAddress] = "0a0a0a0a-0000-4000-8000-000000000004"
		_, err := f.provider().Create(ctx, req)
		var ce *providers.ConfigError
		if !errors.As(err, &ce) || ce.Tag != entraappcert.TagAddress {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a lifetime policy", func(t *testing.T) {
		f := newFixture(t)
		f.srv.SetMaxLifetime(60 * 24 * time.Hour)
		_, err := f.provider().Create(ctx, f.request())
		if e := httpxtest.Permanent[*entraappcert.Error](t, err); e.Status != http.StatusBadRequest || !strings.Contains(err.Error(), entraappcert.TagLifetime) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("down", func(t *testing.T) {
		f := newFixture(t)
		f.srv.SetDown(true, "3")
		_, err := f.provider().Create(ctx, f.request())
		if e := httpxtest.Transient[*entraappcert.Error](t, err); e.RetryAfter() != 3*time.Second {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no Azure environment", func(t *testing.T) {
		f := newFixture(t)
		_, err := entraappcert.New().Create(ctx, f.request())
		if !errors.Is(err, registry.ErrNoAzure) || !providers.IsPermanent(err) {
			t.Fatalf("got %v", err)
		}
	})
}

// Verification failures, classified: an unknown application or tenant names entra-tenant-id; a
// busy endpoint is transient with its Retry-After.
func TestVerifyFailures(t *testing.T) {
	f := newFixture(t)
	p := f.provider()
	req := f.request()
	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("unknown application in the tenant", func(t *testing.T) {
		r := f.request()
		r.Params[entraappcert.TagAppID] = "0a0a0a0a-0000-4000-8000-000000000005"
		err := p.Verify(ctx, r, cred)
		var ce *providers.ConfigError
		if !errors.As(err, &ce) || ce.Tag != entraappcert.TagTenant || !strings.Contains(err.Error(), "AADSTS700016") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unknown tenant", func(t *testing.T) {
		r := f.request()
		r.Params[entraappcert.TagTenant] = "fabrikam.onmicrosoft.com"
		err := p.Verify(ctx, r, cred)
		var ce *providers.ConfigError
		if !errors.As(err, &ce) || ce.Tag != entraappcert.TagTenant || !strings.Contains(err.Error(), "AADSTS90002") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("throttled", func(t *testing.T) {
		f.srv.FailNext(entraappcerttest.Token, 1, entraappcerttest.Fault{Status: 429, Code: "temporarily_unavailable", AADSTS: 50196, Message: "too many requests", RetryAfter: "5"})
		err := p.Verify(ctx, req, cred)
		if e := httpxtest.Transient[*entraappcert.Error](t, err); e.RetryAfter() != 5*time.Second || e.SubCode != "AADSTS50196" {
			t.Fatalf("got %v", err)
		}
		f.clean(t, err, cred.Value.Reveal())
	})
	t.Run("refused for good", func(t *testing.T) {
		f.srv.FailNext(entraappcerttest.Token, 1, entraappcerttest.Fault{Status: 400, Code: "invalid_request", AADSTS: 53003, Message: "Access has been blocked by Conditional Access policies."})
		err := p.Verify(ctx, req, cred)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "Conditional Access") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a value that is not a certificate", func(t *testing.T) {
		err := p.Verify(ctx, req, providers.Credential{Value: providers.NewValue("not a certificate"), CredentialID: cred.CredentialID})
		if !providers.IsPermanent(err) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("works", func(t *testing.T) {
		if err := p.Verify(ctx, req, cred); err != nil {
			t.Fatal(err)
		}
	})
}

// revokeFixture is an application with three certificates: the one the replaced version held (the
// initial value), the one the latest version holds, and a third that belongs to neither (another
// secret's, or a person's).
type revokeFixture struct {
	*fixture
	currentValue, otherValue string
	currentID, otherID       string
}

func newRevokeFixture(t *testing.T) *revokeFixture {
	f := newFixture(t)
	r := &revokeFixture{fixture: f}
	curCert, curKey := entraappcerttest.NewCertificate("current", time.Now().Add(-time.Hour), time.Now().AddDate(0, 3, 0))
	otherCert, otherKey := entraappcerttest.NewCertificate("someone else's", time.Now().Add(-time.Hour), time.Now().AddDate(0, 3, 0))
	r.currentValue, r.otherValue = entraappcerttest.PEM(curCert, curKey), entraappcerttest.PEM(otherCert, otherKey)
	r.currentID = f.srv.SeedKey(f.objectID, entraappcert.DisplayName("kvr-1111111111111111"), curCert)
	r.otherID = f.srv.SeedKey(f.objectID, "someone else's", otherCert)
	return r
}

// revokeRequest is what the sweep sends once the version holding the current certificate is the
// latest and the replaced version (the initial value) is past its grace period.
func (r *revokeFixture) revokeRequest() providers.Request {
	req := r.request()
	req.Current, req.Retired, req.CredentialID = providers.NewValue(r.currentValue), providers.NewValue(r.initialValue), r.currentID
	req.Params["CredentialId"] = r.currentID
	return req
}

func (r *revokeFixture) assertNothingRemoved(t *testing.T, err error) {
	t.Helper()
	if n := r.srv.Calls(entraappcerttest.RemoveKey); n != 0 {
		t.Fatalf("%d removeKey calls", n)
	}
	if ids := r.keyIDs(); len(ids) != 3 {
		t.Fatalf("keys %v", ids)
	}
	r.clean(t, err, r.currentValue, r.otherValue)
}

// Revoke tells by the certificates themselves which key a value holds: it refuses the key of
// req.Current and one that is not req.Retired's, whatever ids it is given; a hand-written retired
// version must hold the key's certificate and its private key.
func TestRevokeChecksTheCertificates(t *testing.T) {
	t.Run("refuses the key req.Current holds", func(t *testing.T) {
		r := newRevokeFixture(t)
		req := r.revokeRequest()
		// The replaced version can no longer be read; CredentialID names... the current key too: refused by id.
		req.Retired = providers.Value{}
		err := r.provider().Revoke(ctx, req, r.currentID)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "current version holds") {
			t.Fatalf("got %v", err)
		}
		r.assertNothingRemoved(t, err)
	})
	t.Run("refuses the current certificate's key even when req.Retired holds it too", func(t *testing.T) {
		r := newRevokeFixture(t)
		req := r.revokeRequest()
		req.Retired = req.Current
		req.CredentialID = ""
		req.Params["CredentialId"] = ""
		err := r.provider().Revoke(ctx, req, r.currentID)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "the one the current version holds") {
			t.Fatalf("got %v", err)
		}
		r.assertNothingRemoved(t, err)
	})
	t.Run("refuses a key that is not req.Retired's", func(t *testing.T) {
		r := newRevokeFixture(t)
		err := r.provider().Revoke(ctx, r.revokeRequest(), r.otherID)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "not the replaced version's") || !strings.Contains(err.Error(), r.otherID) {
			t.Fatalf("got %v", err)
		}
		r.assertNothingRemoved(t, err)
	})
	t.Run("refuses when req.Current is not a certificate of the application", func(t *testing.T) {
		r := newRevokeFixture(t)
		req := r.revokeRequest()
		stranger, key := entraappcerttest.NewCertificate("attacker", time.Now().Add(-time.Hour), time.Now().AddDate(0, 1, 0))
		req.Current, req.CredentialID = providers.NewValue(entraappcerttest.PEM(stranger, key)), ""
		err := r.provider().Revoke(ctx, req, r.initialID)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "is not a certificate of application") {
			t.Fatalf("got %v", err)
		}
		r.assertNothingRemoved(t, err)
	})
	t.Run("hand-written: refuses without the retired value", func(t *testing.T) {
		r := newRevokeFixture(t)
		req := r.revokeRequest()
		req.HandWritten, req.Retired = true, providers.Value{}
		err := r.provider().Revoke(ctx, req, r.initialID)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "remove it by hand") {
			t.Fatalf("got %v", err)
		}
		r.assertNothingRemoved(t, err)
	})
	t.Run("hand-written: refuses a retired value that is another key's certificate", func(t *testing.T) {
		r := newRevokeFixture(t)
		req := r.revokeRequest()
		req.HandWritten, req.Retired = true, providers.NewValue(r.otherValue)
		err := r.provider().Revoke(ctx, req, r.initialID)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "not the replaced version's") {
			t.Fatalf("got %v", err)
		}
		r.assertNothingRemoved(t, err)
	})
	t.Run("hand-written: removes the key whose certificate and private key the retired value holds", func(t *testing.T) {
		r := newRevokeFixture(t)
		req := r.revokeRequest()
		req.HandWritten = true
		if err := r.provider().Revoke(ctx, req, r.initialID); err != nil {
			t.Fatal(err)
		}
		if ids := r.keyIDs(); slices.Contains(ids, r.initialID) || len(ids) != 2 {
			t.Fatalf("keys %v", ids)
		}
	})
	t.Run("removes the retired value's key; a second time is success", func(t *testing.T) {
		r := newRevokeFixture(t)
		for range 2 {
			if err := r.provider().Revoke(ctx, r.revokeRequest(), r.initialID); err != nil {
				t.Fatal(err)
			}
		}
		if ids := r.keyIDs(); slices.Contains(ids, r.initialID) || len(ids) != 2 {
			t.Fatalf("keys %v", ids)
		}
	})
	t.Run("a gone key answered with 400 is success", func(t *testing.T) {
		r := newRevokeFixture(t)
		r.srv.SetMissingKeyStatus(http.StatusBadRequest)
		if err := r.provider().Revoke(ctx, r.revokeRequest(), "0a0a0a0a-0000-4000-8000-00000000000a"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("refuses what is not a keyId", func(t *testing.T) {
		r := newRevokeFixture(t)
		err := r.provider().Revoke(ctx, r.revokeRequest(), "key1")
		if !providers.IsPermanent(err) || r.srv.Requests() != 0 {
			t.Fatalf("got %v", err)
		}
	})
}

// A secret that names its application by client id only: the application is found by appId, and
// every proof's iss is still its object id (Graph wants the object id, not the client id).
func TestApplicationByClientIDOnly(t *testing.T) {
	f := newFixture(t)
	req := f.request()
	delete(req.Params, entraappcert.TagAddress)
	req.Params[entraappcert.TagAppID] = strings.ToUpper(f.appID)
	p := f.provider()
	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if pr := f.srv.Proofs(); len(pr) != 1 || pr[0].Issuer != f.objectID {
		t.Fatalf("proofs %+v", pr)
	}
	if err := p.Verify(ctx, req, cred); err != nil {
		t.Fatal(err)
	}
	if err := p.Revoke(ctx, after(req, cred), f.initialID); err != nil {
		t.Fatal(err)
	}
	if ids := f.keyIDs(); len(ids) != 1 || ids[0] != cred.CredentialID {
		t.Fatalf("keys %v", ids)
	}
}

// Redirects are never followed: not by Graph's calls (which carry kvrotator's token and a proof), not
// by the verification sign-in (which carries a client assertion signed by the new certificate).
func TestRedirectsAreNotFollowed(t *testing.T) {
	for _, route := range []entraappcerttest.Route{entraappcerttest.GetApplication, entraappcerttest.AddKey, entraappcerttest.OpenIDConfig, entraappcerttest.Token} {
		t.Run(string(route), func(t *testing.T) {
			f := newFixture(t)
			attacker := httpxtest.NewAttacker(t)
			p := f.provider()
			req := f.request()
			var cred providers.Credential
			if route == entraappcerttest.OpenIDConfig || route == entraappcerttest.Token {
				var err error
				if cred, err = p.Create(ctx, req); err != nil {
					t.Fatal(err)
				}
			}
			f.srv.FailNext(route, 1, entraappcerttest.Fault{Status: http.StatusTemporaryRedirect, Code: "moved", Message: "moved", Location: attacker.URL + "/collect"})
			var err error
			if cred.Value.IsZero() {
				_, err = p.Create(ctx, req)
			} else {
				err = p.Verify(ctx, req, cred)
			}
			if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "redirects are not followed") {
				t.Fatalf("got %v", err)
			}
			attacker.Untouched(t)
			f.clean(t, err, cred.Value.Reveal())
		})
	}
}
