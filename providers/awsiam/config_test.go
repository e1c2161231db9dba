package awsiam_test

import (
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/awsiam"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// validTags are a complete set of the provider's tags with AWS's own endpoints.
func validTags(extra ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":   awsiam.Name,
		awsiam.TagUser:        "app-orders",
		awsiam.TagAccount:     "123456789012",
		awsiam.TagAdminSecret: "aws-admin",
		"CredentialId":        "AKIAIOSFODNN7EXAMPLE",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(p, extra[i])
			continue
		}
		p[extra[i]] = extra[i+1]
	}
	return p
}

func TestValidate(t *testing.T) {
	p := awsiam.New()
	if err := p.Validate(validTags()); err != nil {
		t.Fatalf("valid tags: %v", err)
	}
	for _, ok := range [][]string{
		{awsiam.TagPartition, "aws-us-gov"},
		{awsiam.TagPartition, "AWS-CN"},
		{awsiam.TagIAMURL, "https://iam.example.internal:8443/"},
		{awsiam.TagSTSURL, "http://127.0.0.1:4566"},
		{awsiam.TagRevoke, "Delete"},
		{awsiam.TagUser, "svc+orders=prod,eu.x@y_z-1"},
		{"CredentialId", ""},
		{"AWS-IAM-USER", "app-orders", awsiam.TagUser, ""}, // tag names are case-insensitive
	} {
		if err := p.Validate(validTags(ok...)); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, tc := range []struct {
		change []string
		tag    string
		leak   string // must not be repeated
	}{
		{[]string{awsiam.TagUser, ""}, awsiam.TagUser, ""},
		{[]string{awsiam.TagUser, "path/app"}, awsiam.TagUser, ""},
		{[]string{awsiam.TagUser, strings.Repeat("a", 65)}, awsiam.TagUser, ""},
		{[]string{awsiam.TagAccount, ""}, awsiam.TagAccount, ""},
		{[]string{awsiam.TagAccount, "1234-5678-9012"}, awsiam.TagAccount, ""},
		{[]string{awsiam.TagAdminSecret, ""}, awsiam.TagAdminSecret, ""},
		{[]string{awsiam.TagAdminSecret, `{"AccessKeyId":"AKIA","SecretAccessKey":"s3cr3t/key"}`}, awsiam.TagAdminSecret, "s3cr3t/key"},
		{[]string{awsiam.TagPartition, "aws-iso-b"}, awsiam.TagPartition, ""},
		{[]string{awsiam.TagIAMURL, "iam.amazonaws.com"}, awsiam.TagIAMURL, ""},
		{[]string{awsiam.TagIAMURL, "http://iam.amazonaws.com"}, awsiam.TagIAMURL, ""},
		{[]string{awsiam.TagIAMURL, "https://user:pw@iam.amazonaws.com"}, awsiam.TagIAMURL, "pw@"},
		{[]string{awsiam.TagSTSURL, "https://sts.amazonaws.com/path"}, awsiam.TagSTSURL, ""},
		{[]string{awsiam.TagSTSURL, "https://sts.amazonaws.com/?x=1"}, awsiam.TagSTSURL, ""},
		{[]string{awsiam.TagRevoke, "disable"}, awsiam.TagRevoke, ""},
		{[]string{"aws-iam-acount", "123456789012"}, "aws-iam-acount", ""},
		{[]string{"CredentialId", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}, "CredentialId", "wJalrXUtnFEMI"},
		{[]string{"CredentialId", "AKIA"}, "CredentialId", ""},
	} {
		err := p.Validate(validTags(tc.change...))
		wantConfigError(t, err, tc.tag)
		if tc.leak != "" && strings.Contains(err.Error(), tc.leak) {
			t.Errorf("%v: error %q repeats the value", tc.change, err)
		}
	}
	// Several problems are reported at once.
	err := p.Validate(validTags(awsiam.TagUser, "", awsiam.TagAccount, "x", awsiam.TagRevoke, "x"))
	for _, tag := range []string{awsiam.TagUser, awsiam.TagAccount, awsiam.TagRevoke} {
		if !strings.Contains(err.Error(), "tag "+tag) {
			t.Errorf("%v does not report %s", err, tag)
		}
	}
	// Duplicates in different letter case.
	wantConfigError(t, p.Validate(validTags("AWS-IAM-USER", "other")), awsiam.TagUser)
}

func TestReferences(t *testing.T) {
	p := awsiam.New()
	refs := p.References(validTags())
	want := []providers.Reference{
		{Kind: providers.RefSecret, Tag: awsiam.TagAdminSecret, Value: "aws-admin"},
		{Kind: providers.RefAccount, Tag: awsiam.TagAccount, Value: "123456789012"},
		{Kind: providers.RefLogin, Tag: awsiam.TagUser, Value: "app-orders"},
		{Kind: providers.RefURL, Tag: awsiam.TagIAMURL, Value: "https://iam.amazonaws.com", Builtin: true},
		{Kind: providers.RefURL, Tag: awsiam.TagSTSURL, Value: "https://sts.us-east-1.amazonaws.com", Builtin: true},
	}
	if len(refs) != len(want) {
		t.Fatalf("refs %v", refs)
	}
	for i := range want {
		if refs[i] != want[i] {
			t.Errorf("ref %d: %+v, want %+v", i, refs[i], want[i])
		}
	}

	// Each partition's own endpoints need no binding, whether by default or written in the tag.
	for name, part := range awsiam.Partitions() {
		for _, tags := range [][]string{{awsiam.TagPartition, name}, {awsiam.TagPartition, name, awsiam.TagIAMURL, part.IAMURL + "/", awsiam.TagSTSURL, part.STSURL}} {
			for _, r := range p.References(validTags(tags...)) {
				if r.Kind == providers.RefURL && (!r.Builtin || (r.Value != part.IAMURL && r.Value != part.STSURL)) {
					t.Errorf("%v: %+v", tags, r)
				}
			}
		}
	}
	// Any other endpoint must be bound, another partition's included.
	for _, tags := range [][]string{
		{awsiam.TagIAMURL, "https://iam.us-gov.amazonaws.com"},
		{awsiam.TagIAMURL, "https://127.0.0.1:8443"},
		{awsiam.TagSTSURL, "https://sts.amazonaws.com"},
		{awsiam.TagPartition, "aws-cn", awsiam.TagSTSURL, "https://sts.us-east-1.amazonaws.com"},
	} {
		n := 0
		for _, r := range p.References(validTags(tags...)) {
			if r.Kind == providers.RefURL && !r.Builtin {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%v: %d unbuilt-in URLs, want 1", tags, n)
		}
	}
	if refs := p.References(validTags(awsiam.TagUser, "")); refs != nil {
		t.Errorf("invalid tags give references %v", refs)
	}
}

func TestRegistered(t *testing.T) {
	set, problems := registry.Build(registry.Env{})
	if problems[awsiam.Name] != nil {
		t.Fatal(problems[awsiam.Name])
	}
	p, ok := set.Lookup("AWS-IAM")
	if !ok || p.Shape() != providers.ShapeCreateRevoke {
		t.Fatalf("registry: %v %v", ok, p)
	}
	if _, ok := p.(providers.Revoker); !ok {
		t.Fatal("not a Revoker")
	}
}
