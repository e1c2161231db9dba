package iamtest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/aws-http-auth/credentials"
	"github.com/aws/smithy-go/aws-http-auth/sigv4"
	httpauth "github.com/aws/smithy-go/aws-http-auth/v4"

	"github.com/kvrotator/kvrotator/providers/awsiam/iamtest"
)

// AWS's documented example (General Reference, "Signature Version 4 signing process": GET
// iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08 at 20150830T123600Z).
func TestSignDocumentedExample(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	empty := sha256.Sum256(nil)
	canonical := iamtest.CanonicalRequest(r, []string{"content-type", "host", "x-amz-date"}, hex.EncodeToString(empty[:]))
	if sum := sha256.Sum256([]byte(canonical)); hex.EncodeToString(sum[:]) != "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59" {
		t.Fatalf("canonical request:\n%s", canonical)
	}
	sig := iamtest.Sign("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam", "20150830T123600Z", canonical)
	if sig != "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7" {
		t.Fatalf("signature %s", sig)
	}
}

// The verifier accepts what the SDK's own signer signs, and nothing changed after signing.
func TestVerifyAgainstTheSDKSigner(t *testing.T) {
	body := "Action=ListAccessKeys&UserName=alice&Version=2010-05-08"
	sum := sha256.Sum256([]byte(body))
	now := time.Now().UTC()
	sign := func() *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:9/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret/+key"}, r,
			hex.EncodeToString(sum[:]), "iam", "us-east-1", now)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := sign()
	a, err := iamtest.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil || a.AccessKeyID != "AKIDEXAMPLE" || a.Region != "us-east-1" || a.Service != "iam" {
		t.Fatalf("%+v %v", a, err)
	}
	if err := a.Verify(r, []byte(body), "secret/+key", now); err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(r, []byte(body), "other", now); err == nil {
		t.Error("the wrong secret verifies")
	}
	if err := a.Verify(r, []byte(body+"&x=1"), "secret/+key", now); err == nil {
		t.Error("a changed body verifies")
	}
	if err := a.Verify(r, []byte(body), "secret/+key", now.Add(16*time.Minute)); err == nil {
		t.Error("a stale signature verifies")
	}
	r.Host = "evil.example"
	if err := a.Verify(r, []byte(body), "secret/+key", now); err == nil {
		t.Error("another host verifies")
	}
}

// signedHeaders are the headers the provider signs with aws-http-auth's signer.
type signedHeaders struct{}

func (signedHeaders) IsSigned(h string) bool {
	return h == "host" || h == "content-type" || strings.HasPrefix(h, "x-amz-")
}

// The standalone signer the provider uses (aws-http-auth's sigv4) gives AWS's documented example's
// signature, and the verifier accepts what it signs and refuses what it did not.
func TestVerifyAgainstTheStandaloneSigner(t *testing.T) {
	doc := httptest.NewRequest(http.MethodGet, "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
	doc.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	empty := sha256.Sum256(nil)
	signer := sigv4.New(func(o *httpauth.SignerOptions) { o.HeaderRules = signedHeaders{} })
	err := signer.SignRequest(&sigv4.SignRequestInput{Request: doc, PayloadHash: empty[:], Service: "iam", Region: "us-east-1",
		Time: time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC), Credentials: credentials.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, " +
		"Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"; doc.Header.Get("Authorization") != want {
		t.Fatalf("Authorization %q", doc.Header.Get("Authorization"))
	}

	body := "Action=TagUser&Tags.member.1.Key=AKIAEXAMPLE&Tags.member.1.Value=kvrotator+v%2Fs+created+kvr-1&UserName=alice&Version=2010-05-08"
	sum := sha256.Sum256([]byte(body))
	now := time.Now().UTC()
	r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:9/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := signer.SignRequest(&sigv4.SignRequestInput{Request: r, PayloadHash: sum[:], Service: "iam", Region: "us-east-1", Time: now,
		Credentials: credentials.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret/+key"}}); err != nil {
		t.Fatal(err)
	}
	a, err := iamtest.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(r, []byte(body), "secret/+key", now); err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(r, []byte(body), "other", now); err == nil {
		t.Error("the wrong secret verifies")
	}
	if err := a.Verify(r, []byte(strings.Replace(body, "alice", "bob", 1)), "secret/+key", now); err == nil {
		t.Error("a changed body verifies")
	}
	r.Header.Set("Content-Type", "text/plain")
	if err := a.Verify(r, []byte(body), "secret/+key", now); err == nil {
		t.Error("a changed Content-Type verifies")
	}
}

// server is a server with an admin allowed everything on alice, and clients signed with the admin key.
func server(t *testing.T) (*iamtest.Server, iamtest.Key, *iam.Client, func(k iamtest.Key) *sts.Client) {
	t.Helper()
	s := iamtest.NewServer()
	t.Cleanup(s.Close)
	s.AddUser("admin", "/")
	s.AddUser("alice", "/team/")
	s.Grant("admin", []string{"alice"})
	admin := s.AddKey("admin")
	creds := func(k iamtest.Key) aws.CredentialsProvider {
		return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: k.ID, SecretAccessKey: k.Secret}, nil
		})
	}
	ic := iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.URL), Credentials: creds(admin), RetryMaxAttempts: 1})
	sc := func(k iamtest.Key) *sts.Client {
		return sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.URL), Credentials: creds(k), RetryMaxAttempts: 1})
	}
	return s, admin, ic, sc
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestAccessKeys(t *testing.T) {
	s, _, ic, sc := server(t)
	ctx := t.Context()
	alice := aws.String("alice")
	out, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: alice})
	if err != nil {
		t.Fatal(err)
	}
	k := out.AccessKey
	if !strings.HasPrefix(aws.ToString(k.AccessKeyId), "AKIA") || len(aws.ToString(k.SecretAccessKey)) != 40 || k.Status != types.StatusTypeActive ||
		aws.ToString(k.UserName) != "alice" || k.CreateDate == nil {
		t.Fatalf("%+v", k)
	}
	id := iamtest.Key{ID: aws.ToString(k.AccessKeyId), Secret: aws.ToString(k.SecretAccessKey)}
	who, err := sc(id).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(who.Arn) != "arn:aws:iam::123456789012:user/team/alice" || aws.ToString(who.Account) != "123456789012" {
		t.Fatalf("%+v %v", who, err)
	}
	if _, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: alice}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: alice}); code(err) != "LimitExceeded" {
		t.Fatalf("third key: %v", err)
	}
	var le *types.LimitExceededException
	if _, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: alice}); !errors.As(err, &le) {
		t.Fatalf("not modelled: %T", err)
	}
	page, err := ic.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: alice, MaxItems: aws.Int32(1)})
	if err != nil || len(page.AccessKeyMetadata) != 1 || !page.IsTruncated || page.Marker == nil {
		t.Fatalf("%+v %v", page, err)
	}
	page, err = ic.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: alice, Marker: page.Marker})
	if err != nil || len(page.AccessKeyMetadata) != 1 || page.IsTruncated {
		t.Fatalf("%+v %v", page, err)
	}
	// Inactive: refused by STS, still counted.
	if _, err := ic.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: alice, AccessKeyId: aws.String(id.ID), Status: types.StatusTypeInactive}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc(id).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); code(err) != "InvalidClientTokenId" {
		t.Fatalf("inactive key: %v", err)
	}
	if _, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: alice}); code(err) != "LimitExceeded" {
		t.Fatalf("inactive keys count: %v", err)
	}
	if _, err := ic.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: alice, AccessKeyId: aws.String(id.ID)}); err != nil {
		t.Fatal(err)
	}
	var nse *types.NoSuchEntityException
	if _, err := ic.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: alice, AccessKeyId: aws.String(id.ID)}); !errors.As(err, &nse) {
		t.Fatalf("second delete: %v", err)
	}
	// A user the admin may not manage: AccessDenied.
	if _, err := ic.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("admin"), AccessKeyId: aws.String(id.ID)}); code(err) != "AccessDenied" {
		t.Fatalf("other user: %v", err)
	}
	if _, err := ic.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("bob")}); code(err) != "AccessDenied" {
		t.Fatalf("ungranted user: %v", err)
	}
	s.Grant("admin", []string{"*"}, "ListAccessKeys")
	if _, err := ic.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("bob")}); !errors.As(err, &nse) {
		t.Fatalf("unknown user: %v", err)
	}
	if n := s.Created(); n != 2 {
		t.Errorf("created %d", n)
	}
}

func TestTags(t *testing.T) {
	s, _, ic, _ := server(t)
	ctx := t.Context()
	alice := aws.String("alice")
	if _, err := ic.TagUser(ctx, &iam.TagUserInput{UserName: alice, Tags: []types.Tag{{Key: aws.String("AKIAEXAMPLE"), Value: aws.String("kvrotator v/s created kvr-1")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.TagUser(ctx, &iam.TagUserInput{UserName: alice, Tags: []types.Tag{{Key: aws.String("akiaexample"), Value: aws.String("replaced")}}}); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Tag("alice", "AKIAEXAMPLE"); v != "replaced" || len(s.Tags("alice")) != 1 {
		t.Fatalf("tag keys are case-insensitive: %v", s.Tags("alice"))
	}
	if _, err := ic.TagUser(ctx, &iam.TagUserInput{UserName: alice, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("not {allowed}")}}}); code(err) != "InvalidInput" {
		t.Fatalf("bad value: %v", err)
	}
	for i := range iamtest.MaxTagsPerUser - 1 {
		s.SetTag("alice", "t"+string(rune('a'+i%26))+string(rune('a'+i/26)), "v")
	}
	if _, err := ic.TagUser(ctx, &iam.TagUserInput{UserName: alice, Tags: []types.Tag{{Key: aws.String("one-more"), Value: aws.String("v")}}}); code(err) != "LimitExceeded" {
		t.Fatalf("51st tag: %v", err)
	}
	out, err := ic.ListUserTags(ctx, &iam.ListUserTagsInput{UserName: alice, MaxItems: aws.Int32(30)})
	if err != nil || len(out.Tags) != 30 || !out.IsTruncated {
		t.Fatalf("%v %v", len(out.Tags), err)
	}
	if _, err := ic.UntagUser(ctx, &iam.UntagUserInput{UserName: alice, TagKeys: []string{"AKIAEXAMPLE", "absent"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Tag("alice", "AKIAEXAMPLE"); ok {
		t.Fatal("not untagged")
	}
}

func TestAuthentication(t *testing.T) {
	s, admin, _, sc := server(t)
	ctx := t.Context()
	if _, err := sc(iamtest.Key{ID: admin.ID, Secret: "wrong"}).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); code(err) != "SignatureDoesNotMatch" {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := sc(iamtest.Key{ID: "AKIAUNKNOWNUNKNOWN00", Secret: "x"}).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); code(err) != "InvalidClientTokenId" {
		t.Fatalf("unknown key: %v", err)
	}
	wrongRegion := sts.New(sts.Options{Region: "eu-west-1", BaseEndpoint: aws.String(s.URL), RetryMaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: admin.ID, SecretAccessKey: admin.Secret}, nil
		})})
	if _, err := wrongRegion.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); code(err) != "SignatureDoesNotMatch" {
		t.Fatalf("wrong region: %v", err)
	}
	// Unsigned: refused.
	resp, err := http.Post(s.URL+"/", "application/x-www-form-urlencoded", strings.NewReader("Action=GetCallerIdentity&Version=2011-06-15"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "<Type>Sender</Type>") || !strings.Contains(string(body), "<Code>IncompleteSignature</Code>") ||
		!strings.Contains(string(body), "<RequestId>") || resp.Header.Get("x-amzn-RequestId") == "" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestFaults(t *testing.T) {
	s, admin, ic, sc := server(t)
	ctx := t.Context()
	s.Throttle(1, 2*time.Second)
	if _, err := sc(admin).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); code(err) != "Throttling" {
		t.Fatalf("%v", err)
	}
	s.FailAction("CreateAccessKey", 1, http.StatusInternalServerError, "ServiceFailure")
	if _, err := sc(admin).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatalf("another action failed: %v", err)
	}
	if _, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")}); code(err) != "ServiceFailure" {
		t.Fatalf("%v", err)
	}
	s.SetPropagation(2)
	out, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")})
	if err != nil {
		t.Fatal(err)
	}
	k := iamtest.Key{ID: aws.ToString(out.AccessKey.AccessKeyId), Secret: aws.ToString(out.AccessKey.SecretAccessKey)}
	for i := range 2 {
		if _, err := sc(k).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); code(err) != "InvalidClientTokenId" {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if _, err := sc(k).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatalf("propagated: %v", err)
	}
	s.LoseNext("CreateAccessKey", 1)
	if _, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")}); err == nil || code(err) != "" {
		t.Fatalf("lost answer: %v", err)
	}
	if n := len(s.Keys("alice")); n != 2 {
		t.Fatalf("the lost request was not applied: %d keys", n)
	}
}
