package registry_test

import (
	"context"
	"errors"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
)

type stub struct{ env registry.Env }

func (stub) Shape() providers.Shape                            { return providers.ShapeGenerated }
func (stub) Validate(providers.Params) error                   { return nil }
func (stub) References(providers.Params) []providers.Reference { return nil }
func (stub) Create(context.Context, providers.Request) (providers.Credential, error) {
	return providers.Credential{}, nil
}
func (stub) Verify(context.Context, providers.Request, providers.Credential) error { return nil }

func TestBuildGivesEachProviderItsEnvironment(t *testing.T) {
	registry.Register("registry-test-env", func(env registry.Env) (providers.Provider, error) { return stub{env}, nil })
	registry.Register("registry-test-azure", func(env registry.Env) (providers.Provider, error) {
		if env.Azure == nil {
			return nil, registry.ErrNoAzure
		}
		return stub{env}, nil
	})
	set, problems := registry.Build(registry.Env{})
	if !errors.Is(problems["registry-test-azure"], registry.ErrNoAzure) {
		t.Fatalf("problems %v", problems)
	}
	if _, ok := set.Lookup("registry-test-azure"); ok {
		t.Fatal("a provider that failed to build is in the set")
	}
	if _, ok := set.Lookup(" Registry-Test-Env "); !ok {
		t.Fatal("Lookup is case-insensitive and trims")
	}
	set, problems = registry.Build(registry.Env{Azure: &registry.Azure{}})
	if p, ok := set.Lookup("registry-test-azure"); !ok || p.(stub).env.Azure == nil || problems["registry-test-azure"] != nil {
		t.Fatalf("with Azure: %v %v", ok, problems)
	}
	if _, ok := registry.NewSet(nil).Lookup("registry-test-env"); ok {
		t.Fatal("an empty set finds nothing")
	}
}

func TestRegisterPanicsOnNilAndDuplicates(t *testing.T) {
	for _, f := range []func(){
		func() { registry.Register("registry-test-nil", nil) },
		func() {
			registry.Register("registry-test-dup", func(registry.Env) (providers.Provider, error) { return stub{}, nil })
			registry.Register("Registry-Test-Dup", func(registry.Env) (providers.Provider, error) { return stub{}, nil })
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("Register must panic")
				}
			}()
			f()
		}()
	}
}
