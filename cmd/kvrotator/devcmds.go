//go:build !lean

package main

import (
	"log/slog"

	"github.com/kvrotator/kvrotator/rotation"
)

// devCommands are the development commands: the demo and the Key Vault emulator (not in the lean
// build that scripts/package.sh deploys).
func devCommands() []command {
	return []command{
		{"demo", "run the whole product locally against the built-in Key Vault emulator", runDemo},
		{"emulator", "run the local Azure Key Vault emulator (HTTPS, auth, events, faults)", runEmulator},
	}
}

// devClock is the KVROTATOR_CLOCK_URL clock: the Key Vault emulator's.
func devClock(url string, log *slog.Logger) (rotation.Clock, error) {
	return newEmulatorClock(url, log), nil
}
