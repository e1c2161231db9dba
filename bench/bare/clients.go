//go:build clients

package main

import (
	"log/slog"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// setup builds what a handler on the same SDKs builds before it serves (no network call): the managed
// identity credential, a secrets client for the vault in KVROTATOR_VAULTS, and a JSON log line.
func setup() {
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		os.Exit(1)
	}
	client, err := azsecrets.NewClient("https://"+os.Getenv("KVROTATOR_VAULTS")+".vault.azure.net/", cred, nil)
	if err != nil || client == nil {
		os.Exit(1)
	}
	slog.New(slog.NewJSONHandler(os.Stdout, nil)).Info("bare handler starting", "vault", os.Getenv("KVROTATOR_VAULTS"))
}
