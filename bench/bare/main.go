// Command bare is the yardstick of the start-up benchmark: a Go binary that imports the same Azure SDK
// packages as kvrotator (azcore, azidentity, azsecrets, azeventgrid, azblob) and only answers GET / on
// 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT. See bench/startup and BENCHMARKS.md.
//
// What it links of them is their package initialisers and little else: the blank references below are
// dropped by the compiler, so none of the SDK's client code is in the binary. Built with -tags clients
// (clients.go), it also builds at start-up what any handler on these SDKs builds before it can serve: the
// managed identity credential, a Key Vault secrets client and a JSON logger's first line. That second
// yardstick is informational; the target is stated against the first.
package main

import (
	"net/http"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// Imported so that their initialisers run, as in kvrotator (the references themselves are dropped).
var (
	_ = azsecrets.NewClient
	_ = azblob.NewClient
	_ = azblob.NewClientFromConnectionString
	_ = azeventgrid.NewClient
	_ = azidentity.NewManagedIdentityCredential
	_ = azidentity.NewClientCertificateCredential
	_ = azidentity.NewDefaultAzureCredential
	_ azcore.TokenCredential
)

func main() {
	setup()
	http.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"), nil); err != nil {
		os.Exit(1)
	}
}
