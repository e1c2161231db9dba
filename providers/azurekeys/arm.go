package azurekeys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// The module name and version azcore puts in the User-Agent (azsdk-go-azurekeys/v1.0.0).
const (
	moduleName    = "azurekeys"
	moduleVersion = "v1.0.0"
)

// maxListPages bounds the pages of a paged listKeys answer (App Configuration has four keys).
const maxListPages = 8

// armClient is one provider call's connection to Resource Manager: one generic client for every
// resource type, on azcore's ARM pipeline (bearer token for the cloud's ARM audience, retries with
// Retry-After, logging with redaction) and azcore's poller for long-running operations.
type armClient struct {
	cl  *arm.Client
	env registry.Azure
	p   *Provider
}

// connect builds the ARM client from the Azure environment the provider was given (WithAzure).
func (p *Provider) connect() (*armClient, error) {
	env, err := p.environment()
	if err != nil {
		// No credential configured: the application's set-up, which no retry mends.
		return nil, providers.Permanent(fmt.Errorf("azure-keys: %w", err))
	}
	cl, err := arm.NewClient(moduleName, moduleVersion, env.Credential, &arm.ClientOptions{
		ClientOptions: p.clientOptions(env),
		// kvrotator does not register resource providers: the resource exists, so its provider is
		// registered, and registration needs rights kvrotator should not have.
		DisableRPRegistration: true,
	})
	if err != nil {
		// The cloud configuration lacks a Resource Manager endpoint or audience: the app's set-up.
		return nil, providers.Permanent(fmt.Errorf("azure-keys: %w", err))
	}
	return &armClient{cl: cl, env: env, p: p}, nil
}

func (p *Provider) environment() (registry.Azure, error) {
	if p.azure != nil && p.azure.Credential != nil {
		return p.azure.WithDefaults(), nil
	}
	return registry.Azure{}, registry.ErrNoAzure
}

func (p *Provider) clientOptions(env registry.Azure) policy.ClientOptions {
	o := policy.ClientOptions{Cloud: env.Cloud, Transport: env.Transport}
	if p.retry != nil {
		o.Retry = *p.retry
	}
	return o
}

// newRequest makes a POST to {resource id}/{action}[/suffix]?api-version=….
func (a *armClient) newRequest(ctx context.Context, c config, action, suffix string) (*policy.Request, error) {
	parts := []string{c.id.String(), action}
	if suffix != "" {
		parts = append(parts, suffix)
	}
	req, err := runtime.NewRequest(ctx, http.MethodPost, runtime.JoinPaths(a.cl.Endpoint(), parts...))
	if err != nil {
		return nil, err
	}
	q := req.Raw().URL.Query()
	q.Set("api-version", c.version)
	req.Raw().URL.RawQuery = q.Encode()
	req.Raw().Header.Set("Accept", "application/json")
	return req, nil
}

// listKeys reads the resource's keys (every slot), following nextLink for paged answers.
func (a *armClient) listKeys(ctx context.Context, c config) (keySet, error) {
	const op = "list keys"
	perm := c.kind.resourceType + "/" + c.kind.listAction + "/action"
	all := keySet{}
	next := ""
	for page := 0; page < maxListPages; page++ {
		var req *policy.Request
		var err error
		if next == "" {
			req, err = a.newRequest(ctx, c, c.kind.listAction, "")
		} else {
			req, err = runtime.NewRequest(ctx, http.MethodPost, next)
		}
		if err != nil {
			return nil, transportError(err, op, c)
		}
		resp, err := a.cl.Pipeline().Do(req)
		if err != nil {
			return nil, transportError(err, op, c)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, responseError(resp, op, c, perm)
		}
		body, err := runtime.Payload(resp)
		if err != nil {
			return nil, transportError(err, op, c)
		}
		ks, nextLink, err := c.kind.parse(body)
		if err != nil {
			return nil, &Error{Op: op, Resource: c.id.String(), Status: resp.StatusCode, Reason: err.Error()}
		}
		for id, k := range ks {
			all[id] = k
		}
		if nextLink == "" {
			return all, nil
		}
		next = nextLink
	}
	return all, nil
}

// regenerate regenerates slot s and waits for the operation to finish: 200 is synchronous; 202 is a
// long-running operation (Cosmos DB, Event Grid) that azcore's poller follows through
// Azure-AsyncOperation or Location.
func (a *armClient) regenerate(ctx context.Context, c config, s slot, keys keySet) error {
	op := "regenerate " + s.ID
	perm := c.kind.resourceType + "/" + c.kind.regenAction + "/action"
	suffix, body, err := c.kind.regenRequest(s, keys)
	if err != nil {
		return &Error{Op: op, Resource: c.id.String(), Reason: err.Error()}
	}
	req, err := a.newRequest(ctx, c, c.kind.regenAction, suffix)
	if err == nil && body != nil {
		err = runtime.MarshalAsJSON(req, body)
	}
	if err != nil {
		return transportError(err, op, c)
	}
	resp, err := a.cl.Pipeline().Do(req)
	if err != nil {
		return transportError(err, op, c)
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		return nil
	case http.StatusAccepted, http.StatusCreated:
		if resp.StatusCode == http.StatusCreated && resp.Header.Get("Azure-AsyncOperation") == "" && resp.Header.Get("Location") == "" {
			return nil
		}
		poller, err := runtime.NewPoller[json.RawMessage](resp, a.cl.Pipeline(), &runtime.NewPollerOptions[json.RawMessage]{Tracer: a.cl.Tracer()})
		if err == nil {
			_, err = poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: a.p.poll})
		}
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.RawResponse != nil {
			return responseError(re.RawResponse, op, c, perm)
		}
		if err != nil {
			return transportError(err, op, c)
		}
		return nil
	default:
		return responseError(resp, op, c, perm)
	}
}
