// Package leaks turns reports of leaked credentials into kvrotator's emergency response
// (rotation.Engine.Leak): GitHub secret-scanning alerts delivered by webhook, and Microsoft Defender for
// Key Vault alerts.
package leaks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/vocab"
)

// GitHub's webhook and REST contract (docs.github.com: "Validating webhook deliveries", "REST API
// endpoints for secret scanning").
const (
	HeaderEvent     = "X-GitHub-Event"
	HeaderDelivery  = "X-GitHub-Delivery"
	HeaderSignature = "X-Hub-Signature-256" // "sha256=" + hex HMAC-SHA256(webhook secret, raw body)
	EventAlert      = "secret_scanning_alert"
	apiVersion      = "2022-11-28"
	maxResponse     = 1 << 20
)

// Deliveries remembers the webhook deliveries already handled (X-GitHub-Delivery), so that a replayed
// delivery changes nothing.
type Deliveries interface {
	Seen(ctx context.Context, id string) (bool, error)
	Mark(ctx context.Context, id string) error
}

// GitHub handles secret_scanning_alert webhooks: it verifies the signature, refuses replays, fetches
// the alert's secret through the REST API and runs the emergency response on it; optionally it then
// resolves the alert as revoked.
type GitHub struct {
	// WebhookSecret and Token read the webhook's HMAC secret and the API token (both kept in Key
	// Vault; the operator names them in app settings).
	WebhookSecret func(context.Context) (vocab.Value, error)
	Token         func(context.Context) (vocab.Value, error)
	// APIURL is GitHub's REST API (default https://api.github.com; GitHub Enterprise Server:
	// https://HOST/api/v3). https only, http for a loopback host (tests).
	APIURL string
	// HTTP sends the API calls (default: 30 s timeout); redirects are never followed.
	HTTP       *http.Client
	Deliveries Deliveries
	Leak       func(context.Context, rotation.LeakRequest) (rotation.LeakReport, error)
	// Resolve closes the alert as "revoked" once every secret holding it was handled.
	Resolve bool
	Logger  *slog.Logger
}

// Result is what a delivery came to: the HTTP status to answer GitHub with and a message that never
// holds the secret.
type Result struct {
	Status   int                  `json:"-"`
	Message  string               `json:"message"`
	Report   *rotation.LeakReport `json:"report,omitempty"`
	Resolved bool                 `json:"resolved,omitempty"`
}

// Compiled on first use, not at start-up (the handler's cold start stays cheap).
var (
	repoRE     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$`) })
	deliveryRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-fA-F-]{8,64}$`) })
)

// Handle processes one delivery: its headers and raw body.
func (g *GitHub) Handle(ctx context.Context, h http.Header, body []byte) Result {
	log := g.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	secret, err := g.WebhookSecret(ctx)
	if err != nil {
		return Result{Status: http.StatusServiceUnavailable, Message: "the webhook secret could not be read: " + err.Error()}
	}
	if !validSignature([]byte(secret.Reveal()), body, h.Get(HeaderSignature)) {
		return Result{Status: http.StatusUnauthorized, Message: "the X-Hub-Signature-256 signature does not match the webhook secret"}
	}
	event, delivery := h.Get(HeaderEvent), h.Get(HeaderDelivery)
	if event == "ping" {
		return Result{Status: http.StatusOK, Message: "pong"}
	}
	if event != EventAlert {
		return Result{Status: http.StatusAccepted, Message: fmt.Sprintf("event %q is not handled (only %s)", clip(event), EventAlert)}
	}
	if !deliveryRE().MatchString(delivery) {
		return Result{Status: http.StatusBadRequest, Message: "missing or malformed X-GitHub-Delivery"}
	}
	if seen, err := g.Deliveries.Seen(ctx, delivery); err != nil {
		return Result{Status: http.StatusServiceUnavailable, Message: "the delivery journal could not be read: " + err.Error()}
	} else if seen {
		return Result{Status: http.StatusOK, Message: "delivery " + delivery + " was handled already (a replay): nothing done"}
	}
	var p struct {
		Action string `json:"action"`
		Alert  struct {
			Number int `json:"number"`
		} `json:"alert"`
		Repository struct {
			FullName string `json:"full_name"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Alert.Number <= 0 || !repoRE().MatchString(p.Repository.FullName) {
		return Result{Status: http.StatusBadRequest, Message: "the payload is not a secret_scanning_alert with alert.number and repository.full_name"}
	}
	if p.Action != "created" && p.Action != "reopened" && p.Action != "publicly_leaked" {
		return Result{Status: http.StatusAccepted, Message: fmt.Sprintf("action %q needs no response", clip(p.Action))}
	}
	alert := fmt.Sprintf("%s alert #%d", p.Repository.FullName, p.Alert.Number)
	leaked, err := g.fetch(ctx, p.Repository.FullName, p.Alert.Number)
	if err != nil {
		status := http.StatusServiceUnavailable
		if vocab.IsPermanent(err) {
			status = http.StatusUnprocessableEntity
		}
		return Result{Status: status, Message: "fetching " + alert + ": " + err.Error()}
	}
	rep, err := g.Leak(ctx, rotation.LeakRequest{Value: leaked, Source: "GitHub secret scanning, " + alert, Trigger: rotation.TriggerEvent})
	if err != nil {
		return Result{Status: http.StatusInternalServerError, Message: err.Error()}
	}
	res := Result{Status: http.StatusOK, Report: &rep}
	failed := false
	for _, o := range rep.Outcomes {
		failed = failed || o.Class != ""
	}
	switch {
	case !rep.Found():
		res.Message = alert + ": no managed secret holds the value; nothing changed"
	case failed:
		res.Message = alert + ": the response did not complete for every secret (see the outcomes); GitHub may redeliver"
		res.Status = http.StatusServiceUnavailable
	default:
		res.Message = fmt.Sprintf("%s: %d secret(s) rotated and the leaked credential revoked", alert, len(rep.Outcomes))
		if g.Resolve {
			if err := g.resolve(ctx, p.Repository.FullName, p.Alert.Number, len(rep.Outcomes)); err != nil {
				log.Warn("resolving the secret-scanning alert failed", "alert", alert, "error", err.Error())
				res.Message += "; resolving the alert failed: " + err.Error()
			} else {
				res.Resolved = true
				res.Message += "; the alert is resolved as revoked"
			}
		}
	}
	if res.Status == http.StatusOK {
		if err := g.Deliveries.Mark(ctx, delivery); err != nil {
			log.Warn("recording the delivery failed; a replay would run the (idempotent) response again", "delivery", delivery, "error", err.Error())
		}
	}
	return res
}

// validSignature checks "sha256=<hex>" against the HMAC-SHA256 of body in constant time.
func validSignature(secret, body []byte, header string) bool {
	got, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	sig, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

// fetch reads the alert's secret: GET /repos/{owner}/{repo}/secret-scanning/alerts/{n}.
func (g *GitHub) fetch(ctx context.Context, repo string, n int) (vocab.Value, error) {
	var alert struct {
		Secret string `json:"secret"`
	}
	if err := g.call(ctx, http.MethodGet, repo, n, nil, &alert); err != nil {
		return vocab.Value{}, err
	}
	if alert.Secret == "" {
		return vocab.Value{}, vocab.Permanent(errors.New("the alert carries no secret (hidden, or the token lacks the secret scanning alerts permission)"))
	}
	return vocab.NewValue(alert.Secret), nil
}

// resolve closes the alert: PATCH {"state":"resolved","resolution":"revoked","resolution_comment":…}.
func (g *GitHub) resolve(ctx context.Context, repo string, n, secrets int) error {
	body := map[string]string{"state": "resolved", "resolution": "revoked",
		"resolution_comment": fmt.Sprintf("Rotated and revoked by kvrotator (%d secret(s)).", secrets)}
	return g.call(ctx, http.MethodPatch, repo, n, body, nil)
}

func (g *GitHub) call(ctx context.Context, method, repo string, n int, in, out any) error {
	base, err := apiBase(g.APIURL)
	if err != nil {
		return vocab.Permanent(err)
	}
	tok, err := g.Token(ctx)
	if err != nil {
		return fmt.Errorf("read the API token: %w", err)
	}
	var rd io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		rd = strings.NewReader(string(b))
	}
	u := base + "/repos/" + repo + "/secret-scanning/alerts/" + strconv.Itoa(n)
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return vocab.Permanent(err)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", apiVersion)
	req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	req.Header.Set("User-Agent", "kvrotator")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if g.HTTP != nil {
		c := *g.HTTP
		hc = &c
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				return vocab.Permanent(fmt.Errorf("%s %s: the answer is not the documented JSON", method, u))
			}
		}
		return nil
	}
	// Rate limits: 403/429 with x-ratelimit-remaining 0, or a retry-after header (secondary limits).
	e := &apiError{status: resp.StatusCode, msg: fmt.Sprintf("%s %s answered %s", method, u, resp.Status)}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 {
		e.after = time.Duration(ra) * time.Second
	}
	if (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusTooManyRequests) &&
		(resp.Header.Get("X-RateLimit-Remaining") == "0" || e.after > 0) {
		e.msg += " (rate limited)"
		return e
	}
	return vocab.ByStatus(resp.StatusCode, e)
}

type apiError struct {
	status int
	msg    string
	after  time.Duration
}

func (e *apiError) Error() string             { return e.msg }
func (e *apiError) RetryAfter() time.Duration { return e.after }

// CheckAPIURL validates a GitHub API URL setting ("" is the public API) and returns the base URL.
func CheckAPIURL(raw string) (string, error) { return apiBase(raw) }

// apiBase checks the API URL: https, or http on a loopback host; no credentials, query or fragment.
func apiBase(raw string) (string, error) {
	if raw == "" {
		raw = "https://api.github.com"
	}
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("GitHub API URL %q: want https://api.github.com or https://HOST/api/v3", raw)
	}
	host := u.Hostname()
	loopback := host == "localhost"
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		loopback = true
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback) {
		return "", fmt.Errorf("GitHub API URL %q: https only (http for a loopback host)", raw)
	}
	return u.String(), nil
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strconv.Quote(s)
}

// JournalDeliveries keeps handled deliveries in kvrotator's journal (the blob beside the leases, or the
// file journal), under the pseudo-vault DeliveryVault, one entry per delivery id: replays are refused
// across instances and restarts.
type JournalDeliveries struct {
	Journal rotation.Journal
	Clock   rotation.Clock
}

// DeliveryVault is the journal key under which webhook deliveries are recorded (not a Key Vault).
const DeliveryVault = "kvrotator-github"

// Seen implements Deliveries.
func (d JournalDeliveries) Seen(ctx context.Context, id string) (bool, error) {
	st, err := d.Journal.Load(ctx, DeliveryVault, strings.ToLower(id))
	return !st.At.IsZero(), err
}

// Mark implements Deliveries.
func (d JournalDeliveries) Mark(ctx context.Context, id string) error {
	now := time.Now()
	if d.Clock != nil {
		now = d.Clock.Now()
	}
	return d.Journal.Save(ctx, DeliveryVault, strings.ToLower(id), rotation.State{At: now.UTC().Truncate(time.Second), By: rotation.TriggerEvent})
}
