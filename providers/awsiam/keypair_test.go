package awsiam_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers/awsiam"
)

const (
	exampleID     = "AKIAIOSFODNN7EXAMPLE"
	exampleSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

func TestKeyPairValue(t *testing.T) {
	v := awsiam.KeyPair{ID: exampleID, Secret: exampleSecret}.Value()
	if v != `{"Version":1,"AccessKeyId":"`+exampleID+`","SecretAccessKey":"`+exampleSecret+`"}` {
		t.Fatalf("value %s", v)
	}
	// credential_process's format: Version 1 and the two fields, as JSON.
	var d map[string]any
	if err := json.Unmarshal([]byte(v), &d); err != nil || d["Version"] != float64(1) {
		t.Fatalf("%v %v", d, err)
	}
	k, why := awsiam.ParseKeyPair(v)
	if why != "" || k.ID != exampleID || k.Secret != exampleSecret {
		t.Fatalf("round trip: %+v %s", k, why)
	}
}

func TestParseKeyPair(t *testing.T) {
	for _, ok := range []string{
		`{"AccessKeyId":"` + exampleID + `","SecretAccessKey":"` + exampleSecret + `"}`,
		` {"Version":1, "AccessKeyId":" ` + exampleID + ` ", "SecretAccessKey":"` + exampleSecret + `", "Expiration":null} `,
		"[default]\naws_access_key_id = " + exampleID + "\naws_secret_access_key=" + exampleSecret + "\nregion = us-east-1\n",
		"# kvrotator\naws_access_key_id=" + exampleID + "\r\naws_secret_access_key=" + exampleSecret,
	} {
		if k, why := awsiam.ParseKeyPair(ok); why != "" || k.ID != exampleID || k.Secret != exampleSecret {
			t.Errorf("%q: %+v %s", ok, k, why)
		}
	}
	for _, tc := range []struct{ value, why string }{
		{"", "empty"},
		{"   ", "empty"},
		{exampleSecret, "neither a JSON document nor an AWS credentials file"},
		{`{"AccessKeyId":` + exampleID + `}`, "not a JSON object"},
		{`{"AccessKeyId":"` + exampleID + `"}`, "lacks AccessKeyId or SecretAccessKey"},
		{`{"Version":2,"AccessKeyId":"` + exampleID + `","SecretAccessKey":"` + exampleSecret + `"}`, "Version is not 1"},
		{`{"AccessKeyId":"` + exampleID + `","SecretAccessKey":"` + exampleSecret + `","SessionToken":"FwoG"}`, "temporary credentials"},
		{`{"AccessKeyId":"AKIA/bad","SecretAccessKey":"` + exampleSecret + `"}`, "not an access key id"},
		{`{"AccessKeyId":"` + exampleID + `","SecretAccessKey":"two words"}`, "SecretAccessKey is empty, too long"},
		{`{"AccessKeyId":"` + exampleID + `","SecretAccessKey":""}`, "SecretAccessKey is empty, too long"},
		{"aws_access_key_id=" + exampleID, "lacks aws_access_key_id or aws_secret_access_key"},
		{"aws_access_key_id=" + exampleID + "\naws_secret_access_key=" + exampleSecret + "\naws_session_token=FwoG", "temporary credentials"},
		{"[a]\naws_access_key_id=" + exampleID + "\naws_secret_access_key=" + exampleSecret + "\n[b]\naws_access_key_id=" + exampleID + "\naws_secret_access_key=x", "more than one"},
	} {
		k, why := awsiam.ParseKeyPair(tc.value)
		if !strings.Contains(why, tc.why) || k != (awsiam.KeyPair{}) {
			t.Errorf("%q: %+v %q, want %q", tc.value, k, why, tc.why)
		}
		if strings.Contains(why, exampleSecret) || strings.Contains(why, "two words") {
			t.Errorf("%q: the reason quotes the value", tc.value)
		}
	}
}
