package vocab_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/vocab"
)

func TestTransientStatusIsTheOneRule(t *testing.T) {
	for status, want := range map[int]bool{400: false, 401: false, 403: false, 404: false, 409: false, 412: false,
		408: true, 429: true, 500: true, 502: true, 503: true, 504: true} {
		if got := vocab.TransientStatus(status); got != want {
			t.Errorf("TransientStatus(%d) = %v, want %v", status, got, want)
		}
		err := vocab.ByStatus(status, errors.New("call failed"))
		if vocab.IsPermanent(err) == want {
			t.Errorf("ByStatus(%d): permanent %v", status, vocab.IsPermanent(err))
		}
	}
	if vocab.ByStatus(403, nil) != nil {
		t.Error("ByStatus(nil) is not nil")
	}
}

type throttled struct{ after time.Duration }

func (e throttled) Error() string             { return "throttled" }
func (e throttled) RetryAfter() time.Duration { return e.after }

func TestRetryAfterContract(t *testing.T) {
	if d, ok := vocab.RetryAfter(fmt.Errorf("create: %w", throttled{3 * time.Second})); !ok || d != 3*time.Second {
		t.Fatalf("wrapped: %v %v", d, ok)
	}
	if _, ok := vocab.RetryAfter(throttled{0}); ok {
		t.Fatal("a zero wait counted")
	}
	if _, ok := vocab.RetryAfter(errors.New("plain")); ok {
		t.Fatal("a plain error asked for a wait")
	}
}

func TestPermanentAndConfigErrors(t *testing.T) {
	ce := vocab.ConfigErrorf("random-length", "8", "must be between %d and %d", 16, 4096)
	if ce.Error() != `tag random-length="8": must be between 16 and 4096` || !vocab.IsPermanent(fmt.Errorf("x: %w", ce)) {
		t.Fatalf("%v", ce)
	}
	if vocab.Permanent(nil) != nil || !vocab.IsPermanent(vocab.Permanent(errors.New("no"))) || vocab.IsPermanent(errors.New("maybe later")) {
		t.Fatal("Permanent")
	}
	if vocab.JoinErrors(nil) != nil || vocab.JoinErrors([]error{ce}) != error(ce) || !strings.Contains(vocab.JoinErrors([]error{ce, ce}).Error(), "\n") {
		t.Fatal("JoinErrors")
	}
}

func TestValueNeverPrints(t *testing.T) {
	v := vocab.NewValue("s3cr3t-value")
	js, _ := json.Marshal(struct{ V vocab.Value }{v})
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "v", v)
	for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s", v, v, v, v), string(js), b.String()} {
		if strings.Contains(s, "s3cr3t") {
			t.Fatalf("the value printed: %s", s)
		}
	}
	if v.Reveal() != "s3cr3t-value" || v.Len() != 12 || v.IsZero() || !vocab.NewValue("").IsZero() {
		t.Fatal("Reveal/Len/IsZero")
	}
}
