package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
)

// trackResponse is the ingestion API's answer (TrackResponse).
type trackResponse struct {
	ItemsReceived int          `json:"itemsReceived"`
	ItemsAccepted int          `json:"itemsAccepted"`
	Errors        []trackError `json:"errors"`
}

type trackError struct {
	Index      int    `json:"index"`
	StatusCode int    `json:"statusCode"`
	Message    string `json:"message"`
}

// retryableStatus: worth another attempt, for a whole request or one item of a 206 (the Azure
// Monitor exporters' list; 401/403 because a new role assignment takes a while to apply).
func retryableStatus(code int) bool {
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

const maxRedirects = 3

// transmit sends items in requests of at most MaxItemsPerRequest. With stop set (the background
// goroutine), items not yet delivered when stop closes or ctx ends are returned, not dropped, for
// Close to send; otherwise they are dropped. The error reports drops.
func (r *Recorder) transmit(ctx context.Context, items [][]byte, stop <-chan struct{}) ([][]byte, error) {
	dropped, why := 0, ""
	for len(items) > 0 {
		n := min(len(items), MaxItemsPerRequest)
		left, d, w := r.sendChunk(ctx, items[:n], stop)
		items = items[n:]
		dropped += d
		if w != "" {
			why = w
		}
		if left != nil {
			return append(left, items...), dropErr(dropped, why)
		}
	}
	return nil, dropErr(dropped, why)
}

func dropErr(n int, why string) error {
	if n == 0 {
		return nil
	}
	return fmt.Errorf("metrics: %d telemetry item(s) dropped: %s", n, why)
}

// sendChunk delivers one request's items with retries. It returns the items to carry (see
// transmit), how many it dropped and why.
func (r *Recorder) sendChunk(ctx context.Context, items [][]byte, stop <-chan struct{}) (left [][]byte, dropped int, why string) {
	pending := items
	drop := func(batch [][]byte, reason string, attempts int) {
		dropped += len(batch)
		why = reason
		total := r.nDropped.Add(uint64(len(batch)))
		r.log.Warn("metrics: telemetry items dropped", "items", len(batch), "attempts", attempts,
			"reason", reason, "endpoint", r.trackURL(), "dropped_total", total)
	}
	redirects := 0
	for attempt := 1; ; attempt++ {
		res := r.post(ctx, pending)
		var retry [][]byte
		retryWhy := ""
		switch {
		case res.err != nil:
			if ctx.Err() != nil {
				if stop != nil {
					return pending, dropped, why
				}
				drop(pending, "not sent before the deadline: "+res.err.Error(), attempt)
				return nil, dropped, why
			}
			var nr interface{ NonRetriable() }
			if errors.As(res.err, &nr) {
				drop(pending, res.err.Error(), attempt)
				return nil, dropped, why
			}
			retry, retryWhy = pending, res.err.Error()
		case res.status == http.StatusTemporaryRedirect || res.status == http.StatusPermanentRedirect:
			base, ok := r.redirectBase(res.location)
			if !ok || redirects >= maxRedirects {
				drop(pending, fmt.Sprintf("HTTP %d redirect to %q not followed (check IngestionEndpoint in the connection string)", res.status, res.location), attempt)
				return nil, dropped, why
			}
			redirects++
			r.setEndpoint(base)
			attempt-- // a redirect is not a failed attempt
			continue
		case res.status == http.StatusOK || res.status == http.StatusPartialContent:
			accepted := len(pending)
			seen := map[int]bool{}
			var final [][]byte
			reason := ""
			for _, e := range res.body.Errors {
				if e.Index < 0 || e.Index >= len(pending) || seen[e.Index] {
					continue
				}
				seen[e.Index] = true
				accepted--
				if retryableStatus(e.StatusCode) {
					retry = append(retry, pending[e.Index])
					retryWhy = fmt.Sprintf("item status %d: %s", e.StatusCode, e.Message)
				} else {
					final = append(final, pending[e.Index])
					reason = fmt.Sprintf("rejected by ingestion: item status %d: %s", e.StatusCode, e.Message)
				}
			}
			r.nSent.Add(uint64(accepted))
			if len(final) > 0 {
				drop(final, reason, attempt)
			}
		case retryableStatus(res.status):
			retry, retryWhy = pending, res.describe()
		default:
			drop(pending, res.describe(), attempt)
			return nil, dropped, why
		}
		if len(retry) == 0 {
			return nil, dropped, why
		}
		if attempt >= r.maxAttempts {
			drop(retry, retryWhy, attempt)
			return nil, dropped, why
		}
		wait := r.backoff(attempt)
		if res.retryAfter > 0 {
			if res.retryAfter > r.maxRetryWait {
				drop(retry, fmt.Sprintf("%s; Retry-After %s exceeds %s", retryWhy, res.retryAfter, r.maxRetryWait), attempt)
				return nil, dropped, why
			}
			wait = res.retryAfter
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return retry, dropped, why
		case <-ctx.Done():
			t.Stop()
			if stop != nil {
				return retry, dropped, why
			}
			drop(retry, retryWhy+"; no time left to retry", attempt)
			return nil, dropped, why
		}
		r.nRetried.Add(uint64(len(retry)))
		pending = retry
	}
}

// backoff is the wait before attempt n+1: jittered over the upper half of RetryDelay·2^(n-1), capped.
func (r *Recorder) backoff(n int) time.Duration {
	d := min(r.retryDelay<<min(n-1, 20), maxBackoff)
	return d/2 + rand.N(d/2+1)
}

type postResult struct {
	status     int
	body       trackResponse
	raw        string
	retryAfter time.Duration
	location   string
	err        error
}

func (p postResult) describe() string {
	s := fmt.Sprintf("HTTP %d", p.status)
	if len(p.body.Errors) > 0 && p.body.Errors[0].Message != "" {
		s += ": " + p.body.Errors[0].Message
	} else if p.raw != "" {
		s += ": " + p.raw
	}
	switch p.status {
	case http.StatusUnauthorized, http.StatusForbidden:
		s += " (with local auth disabled on the component, set a credential; its identity needs Monitoring Metrics Publisher on the component)"
	case http.StatusPaymentRequired, 439:
		s += " (the component's daily cap or quota is reached)"
	}
	return s
}

// post makes one request.
func (r *Recorder) post(ctx context.Context, items [][]byte) postResult {
	ctx, cancel := context.WithTimeout(ctx, r.attemptTimeout)
	defer cancel()
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(it)
	}
	buf.WriteByte(']')
	req, err := runtime.NewRequest(ctx, http.MethodPost, r.trackURL())
	if err != nil {
		return postResult{err: err}
	}
	if err := req.SetBody(streaming.NopCloser(bytes.NewReader(buf.Bytes())), "application/json"); err != nil {
		return postResult{err: err}
	}
	r.nReq.Add(1)
	resp, err := r.pipeline.Do(req)
	if err != nil {
		return postResult{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	res := postResult{status: resp.StatusCode, location: resp.Header.Get("Location")}
	if json.Unmarshal(b, &res.body) != nil {
		res.raw = oneLine(string(b), 200)
	}
	res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return res
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func (r *Recorder) trackURL() string {
	r.epMu.Lock()
	defer r.epMu.Unlock()
	return r.endpoint + "/v2.1/track"
}

func (r *Recorder) setEndpoint(base string) {
	r.epMu.Lock()
	r.endpoint = base
	r.epMu.Unlock()
}

// redirectBase turns a Location into the new endpoint's base (https scheme and host, as the Azure
// Monitor exporters do; the path stays /v2.1/track).
func (r *Recorder) redirectBase(loc string) (string, bool) {
	if loc == "" {
		return "", false
	}
	base, err := url.Parse(r.trackURL())
	if err != nil {
		return "", false
	}
	u, err := base.Parse(loc)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" || u.User != nil {
		return "", false
	}
	return "https://" + u.Host, true
}
