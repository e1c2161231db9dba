//go:build lean

package main

import (
	"errors"
	"log/slog"

	"github.com/kvrotator/kvrotator/config"
	"github.com/kvrotator/kvrotator/rotation"
)

// devCommands: the lean build carries no development command.
func devCommands() []command { return nil }

// devClock: the lean build tells time from the system clock only.
func devClock(string, *slog.Logger) (rotation.Clock, error) {
	return nil, errors.New(config.EnvClockURL + " is a development setting (the Key Vault emulator's clock); this build (lean, for deployment) does not carry it: unset it")
}
