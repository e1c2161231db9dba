// Package consumers connects kvrotator to the applications that read its secrets: it asks them to pick
// up a new version after a rotation (Refresher: App Service and Functions Key Vault references through
// Resource Manager, Container Apps revisions restarted, or a signed webhook), and reads Key Vault's
// audit log in Log Analytics to tell who reads a secret and which version (LogAnalytics), so that a
// replaced credential is revoked only once its readers have moved.
//
// The operator names consumers in the bindings (bindings.Binding.Consumers); a secret's tags never do.
package consumers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/providers/webhook/signature"
	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/vocab"
)

// The Resource Manager API versions of the calls.
const (
	appServiceAPIVersion   = "2022-03-01" // config/configreferences/appsettings/refresh
	containerAppAPIVersion = "2025-01-01" // revisions, revisions/{name}/restart
	moduleName             = "consumers"
	moduleVersion          = "v1.0.0"
	maxRevisionPages       = 20
	maxWebhookResponse     = 64 << 10
)

// EventRotated is the type in a webhook consumer's notification.
const EventRotated = "kvrotator.secret.rotated"

// Notification is the JSON body a webhook consumer receives, signed as the webhook provider's calls
// are (X-Kvrotator-Timestamp, X-Kvrotator-Signature: "sha256=" + hex HMAC-SHA256(key, timestamp + "." +
// body)). It names the new version, never its value: the consumer reads it from Key Vault.
type Notification struct {
	Type            string    `json:"type"`
	Vault           string    `json:"vault"`
	Secret          string    `json:"secret"`
	Version         string    `json:"version"`
	PreviousVersion string    `json:"previousVersion,omitempty"`
	RotatedAt       time.Time `json:"rotatedAt"`
}

// Options configure a Refresher.
type Options struct {
	// Azure is the credential, cloud and (in tests) transport for Resource Manager.
	Azure *registry.Azure
	// HTTPClient sends webhook notifications (default: 30 s timeout); redirects are never followed.
	HTTPClient *http.Client
	// PollFrequency is how often a long-running Resource Manager operation is polled (default 5 s).
	PollFrequency time.Duration
	// Retry overrides azcore's retry policy for Resource Manager calls (tests make it quick).
	Retry  *policy.RetryOptions
	Logger *slog.Logger
}

// Refresher implements rotation.Refresher.
type Refresher struct {
	o    Options
	http *http.Client
}

var _ rotation.Refresher = (*Refresher)(nil)

// NewRefresher returns a Refresher; it makes no network call.
func NewRefresher(o Options) *Refresher {
	if o.PollFrequency <= 0 {
		o.PollFrequency = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if o.HTTPClient != nil {
		c := *o.HTTPClient
		hc = &c
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Refresher{o: o, http: hc}
}

// Refresh asks consumer c to pick up the rotation's new version.
func (r *Refresher) Refresh(ctx context.Context, c rotation.Consumer, info rotation.Refresh) error {
	switch c.Kind {
	case rotation.ConsumerAppService:
		return r.appService(ctx, c.Resource)
	case rotation.ConsumerContainerApp:
		return r.containerApp(ctx, c.Resource)
	case rotation.ConsumerWebhook:
		return r.webhook(ctx, c, info)
	}
	return providers.Permanent(fmt.Errorf("consumer kind %q is not supported", c.Kind))
}

func (r *Refresher) arm() (*arm.Client, error) {
	if r.o.Azure == nil || r.o.Azure.Credential == nil {
		return nil, providers.Permanent(fmt.Errorf("consumers: %w", registry.ErrNoAzure))
	}
	env := r.o.Azure.WithDefaults()
	co := policy.ClientOptions{Cloud: env.Cloud, Transport: env.Transport}
	if r.o.Retry != nil {
		co.Retry = *r.o.Retry
	}
	cl, err := arm.NewClient(moduleName, moduleVersion, env.Credential, &arm.ClientOptions{ClientOptions: co, DisableRPRegistration: true})
	if err != nil {
		return nil, providers.Permanent(fmt.Errorf("consumers: %w", err))
	}
	return cl, nil
}

// appService asks Resource Manager to refresh the Key Vault references of an App Service or Functions
// app (or slot): the app then reads the new version without waiting for its daily refresh.
func (r *Refresher) appService(ctx context.Context, resource string) error {
	cl, err := r.arm()
	if err != nil {
		return err
	}
	return r.post(ctx, cl, resource+"/config/configreferences/appsettings/refresh", appServiceAPIVersion)
}

// containerApp restarts the active revisions of a Container App: a changed secret neither creates nor
// restarts a revision, so its replicas keep the old value until they restart.
func (r *Refresher) containerApp(ctx context.Context, resource string) error {
	cl, err := r.arm()
	if err != nil {
		return err
	}
	var active []string
	next := runtime.JoinPaths(cl.Endpoint(), resource, "revisions") + "?api-version=" + containerAppAPIVersion
	for page := 0; next != "" && page < maxRevisionPages; page++ {
		if err := sameHost(cl.Endpoint(), next); err != nil {
			return providers.Permanent(err)
		}
		req, err := runtime.NewRequest(ctx, http.MethodGet, next)
		if err != nil {
			return providers.Permanent(err)
		}
		req.Raw().Header.Set("Accept", "application/json")
		resp, err := cl.Pipeline().Do(req)
		if err != nil {
			return classify("list the revisions of "+resource, err)
		}
		if !runtime.HasStatusCode(resp, http.StatusOK) {
			return classify("list the revisions of "+resource, runtime.NewResponseError(resp))
		}
		var body struct {
			Value []struct {
				Name       string `json:"name"`
				Properties struct {
					Active bool `json:"active"`
				} `json:"properties"`
			} `json:"value"`
			NextLink string `json:"nextLink"`
		}
		if err := runtime.UnmarshalAsJSON(resp, &body); err != nil {
			return providers.Permanent(fmt.Errorf("list the revisions of %s: %w", resource, err))
		}
		for _, v := range body.Value {
			if v.Properties.Active && v.Name != "" && !strings.ContainsAny(v.Name, "/?#") {
				active = append(active, v.Name)
			}
		}
		next = body.NextLink
	}
	if len(active) == 0 {
		return providers.Permanent(fmt.Errorf("container app %s has no active revision to restart", resource))
	}
	var errs []error
	for _, rev := range active {
		if err := r.post(ctx, cl, resource+"/revisions/"+url.PathEscape(rev)+"/restart", containerAppAPIVersion); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// post sends a POST action to Resource Manager and waits for its long-running operation, if any.
func (r *Refresher) post(ctx context.Context, cl *arm.Client, path, apiVersion string) error {
	req, err := runtime.NewRequest(ctx, http.MethodPost, runtime.JoinPaths(cl.Endpoint(), path))
	if err != nil {
		return providers.Permanent(err)
	}
	q := req.Raw().URL.Query()
	q.Set("api-version", apiVersion)
	req.Raw().URL.RawQuery = q.Encode()
	req.Raw().Header.Set("Accept", "application/json")
	resp, err := cl.Pipeline().Do(req)
	if err != nil {
		return classify("POST "+path, err)
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		return nil
	case http.StatusAccepted, http.StatusCreated:
		poller, err := runtime.NewPoller[json.RawMessage](resp, cl.Pipeline(), nil)
		if err != nil {
			return classify("POST "+path, err)
		}
		if _, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: r.o.PollFrequency}); err != nil {
			return classify("POST "+path+" (long-running operation)", err)
		}
		return nil
	}
	return classify("POST "+path, runtime.NewResponseError(resp))
}

// classify makes Resource Manager's answers permanent or transient: 408, 429 and 5xx (and transport
// errors) are worth trying again; everything else (403 missing role, 404 no such app) is not.
func classify(op string, err error) error {
	err = fmt.Errorf("%s: %w", op, err)
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return vocab.ByStatus(re.StatusCode, err)
	}
	return err
}

// sameHost refuses a nextLink that leaves Resource Manager's host.
func sameHost(endpoint, link string) error {
	e, err1 := url.Parse(endpoint)
	l, err2 := url.Parse(link)
	if err1 != nil || err2 != nil || !strings.EqualFold(e.Host, l.Host) || l.Scheme != e.Scheme {
		return fmt.Errorf("a page link leaves Resource Manager (%s)", endpoint)
	}
	return nil
}

// webhook posts the signed notification to a webhook consumer.
func (r *Refresher) webhook(ctx context.Context, c rotation.Consumer, info rotation.Refresh) error {
	if info.Secrets == nil {
		return providers.Permanent(errors.New("no secret reader for the signing key"))
	}
	key, err := info.Secrets.SecretValue(ctx, c.SigningSecret)
	if err != nil {
		return fmt.Errorf("read the signing key %q: %w", c.SigningSecret, err)
	}
	body, err := json.Marshal(Notification{Type: EventRotated, Vault: info.Vault, Secret: info.Secret, Version: info.Version,
		PreviousVersion: info.Previous, RotatedAt: info.At.UTC()})
	if err != nil {
		return providers.Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return providers.Permanent(fmt.Errorf("webhook consumer %s: %w", c.URL, err))
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kvrotator-consumer/1")
	req.Header.Set(signature.HeaderTimestamp, ts)
	req.Header.Set(signature.HeaderSignature, signature.Sign([]byte(key.Reveal()), ts, body))
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("webhook consumer %s: %w", c.URL, redactURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookResponse))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	}
	return vocab.ByStatus(resp.StatusCode, fmt.Errorf("webhook consumer %s answered %s", c.URL, resp.Status))
}

// redactURLError keeps the operation and the cause of a transport error without repeating the URL.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
