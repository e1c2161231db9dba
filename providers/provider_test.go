package providers_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
)

func TestValueNeverPrints(t *testing.T) {
	v := providers.NewValue("s3cr3t-value")
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "value", v)
	js, _ := json.Marshal(struct{ V providers.Value }{v})
	for _, out := range []string{fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s %q", v, v, v, v, v), string(js), logged.String(),
		fmt.Errorf("wrapped: %v", v).Error()} {
		if strings.Contains(out, "s3cr3t") {
			t.Fatalf("value printed: %s", out)
		}
	}
	if v.Reveal() != "s3cr3t-value" || v.Len() != 12 || v.IsZero() {
		t.Fatal("Reveal/Len/IsZero")
	}
}

func TestParams(t *testing.T) {
	p := providers.Params{"Random-Length": "40", "random-alphabet": "hex", "random-lenght": "3", "RANDOM-ALPHABET": "alnum", "other": "x"}
	if p.Get("random-length") != "40" || p.Get("missing") != "" {
		t.Fatal("Get is not case-insensitive")
	}
	if n, err := p.Int("random-length", 32, 16, 4096); err != nil || n != 40 {
		t.Fatalf("Int: %d %v", n, err)
	}
	if n, err := p.Int("absent", 32, 16, 4096); err != nil || n != 32 {
		t.Fatalf("Int default: %d %v", n, err)
	}
	for _, bad := range []string{"ten", "5", "99999"} {
		_, err := providers.Params{"n": bad}.Int("n", 1, 10, 100)
		var ce *providers.ConfigError
		if !errors.As(err, &ce) || ce.Tag != "n" || !providers.IsPermanent(err) {
			t.Errorf("Int(%q): %v", bad, err)
		}
	}
	errs := p.CheckTags("random", "random-", "random-length", "random-alphabet")
	msgs := fmt.Sprint(errs)
	if len(errs) != 2 || !strings.Contains(msgs, "random-lenght") || !strings.Contains(msgs, "set 2 times") {
		t.Fatalf("CheckTags: %v", errs)
	}
}

func TestClassification(t *testing.T) {
	base := errors.New("boom")
	if providers.IsPermanent(base) || !providers.IsPermanent(providers.Permanent(base)) || providers.Permanent(nil) != nil {
		t.Fatal("Permanent/IsPermanent")
	}
	if !providers.IsPermanent(fmt.Errorf("ctx: %w", providers.ConfigErrorf("t", "v", "bad"))) {
		t.Fatal("a wrapped ConfigError is permanent")
	}
	if !errors.Is(providers.Permanent(base), base) {
		t.Fatal("Permanent must unwrap")
	}
}
