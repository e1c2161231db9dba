package main

import (
	"fmt"
	"os"

	"github.com/kvrotator/kvrotator/internal/azuritetest"
)

// defaultAzuriteBlob is where scripts/test.sh installs azurite-blob, relative to the repository root;
// KVROTATOR_AZURITE_BLOB overrides it.
const defaultAzuriteBlob = ".tools/azurite/node_modules/.bin/azurite-blob"

// azuriteProc is Azurite started as the tests start it (internal/azuritetest.Launch), with its own
// temporary workspace.
type azuriteProc struct {
	*azuritetest.Process
	connectionString string
	dir              string
}

func startAzurite() (*azuriteProc, error) {
	bin := os.Getenv(azuritetest.EnvBlob)
	if bin == "" {
		bin = defaultAzuriteBlob
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("azurite is not available (%s unset or wrong, and no %s here: %v); run from the repository root after scripts/test.sh installed it",
			azuritetest.EnvBlob, defaultAzuriteBlob, err)
	}
	dir, err := os.MkdirTemp("", "kvrotator-sweep-azurite-")
	if err != nil {
		return nil, err
	}
	p, err := azuritetest.Launch(bin, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &azuriteProc{Process: p, connectionString: p.ConnectionString, dir: dir}, nil
}

// stop ends Azurite and removes its workspace.
func (a *azuriteProc) stop() {
	a.Stop()
	os.RemoveAll(a.dir)
}
