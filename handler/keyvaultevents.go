package handler

import (
	"errors"
	"net/http"

	"github.com/kvrotator/kvrotator/events"
)

// keyVaultEvents handles the eventGridTrigger function: one Key Vault event per invocation.
//
// Event Grid redelivers an event only when the invocation fails, so only a transient failure answers
// non-2xx (500). A malformed envelope or event, or a permanent failure, is acknowledged with 200 and
// reported: redelivering it cannot help.
func (h *handler) keyVaultEvents(inv *invocation, r *http.Request) reply {
	data, ierr := h.readData(r, "eventGridEvent")
	if ierr != nil {
		return inv.rejectEvent(ierr.msg, "")
	}
	ev, err := events.Decode(data)
	if err != nil {
		field := ""
		if de := (*events.DecodeError)(nil); errors.As(err, &de) {
			field = de.Field
		}
		return inv.rejectEvent(err.Error(), field)
	}
	inv.log = inv.log.With("event_id", ev.ID, "event_type", ev.Type)
	o := h.rotator.HandleEvent(r.Context(), ev)
	inv.outcome(r.Context(), o, inv.elapsedMS())
	if o.Transient() {
		inv.logf("the invocation fails so that Event Grid redelivers the event")
		return reply{status: http.StatusInternalServerError}
	}
	return ok
}

// rejectEvent acknowledges an event that cannot be processed (a permanent failure) and reports it.
func (inv *invocation) rejectEvent(msg, field string) reply {
	inv.log.Error("invocation rejected", "error", msg, "field", field, "class", "permanent")
	inv.logf("error: %s (acknowledged without retry: redelivery cannot fix it)", msg)
	return ok
}
