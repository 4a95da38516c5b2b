package connectors

import "errors"

// Outcome is what a failed write tells about its effect on the other system (DESIGN.md section
// 7, "Unknown outcome"). It is the one rule every non-idempotent write follows before it is
// repeated: only NotSent and Refused may be repeated blind; Unknown must first be verified.
type Outcome int

const (
	// Unknown: the request left and nothing proves it had no effect: a timeout or a reset
	// connection after it was written, every 5xx whatever its code or Retry-After (a gateway's
	// 502 or 504 says nothing about the origin), a 2xx whose body could not be read. The next
	// attempt first finds out whether this one landed.
	Unknown Outcome = iota
	// NotSent: the request provably never left this process: the connection was refused, the
	// name did not resolve, the context ended before it was written, credentials were missing,
	// a circuit breaker rejected the call. Repeat it freely.
	NotSent
	// Refused: the system answered with a 4xx (400, 401, 403, 404, 409, 422, ..., and 429):
	// it did nothing. Repeat it when the cause is gone (after Retry-After for a 429).
	Refused
)

func (o Outcome) String() string {
	switch o {
	case NotSent:
		return "not_sent"
	case Refused:
		return "refused"
	}
	return "unknown"
}

// ErrNotSent is matched (errors.Is) by errors of calls that were stopped before any request was
// sent, such as a circuit breaker's rejection.
var ErrNotSent = errors.New("request not sent")

// WriteOutcome classifies the error of a write. nil is not an error and has no outcome; callers
// ask only about failures. Errors this package does not know (a bare context deadline, a
// DynamoDB error around the call) are Unknown: guessing "nothing happened" is what doubles.
func WriteOutcome(err error) Outcome {
	if errors.Is(err, ErrNotSent) {
		return NotSent
	}
	var e *Error
	if !errors.As(err, &e) {
		return Unknown
	}
	switch {
	case e.unsent, e.HeldBack:
		return NotSent // whatever the status says, it is another call's (a token endpoint's)
	case e.Status >= 400 && e.Status <= 499, e.Kind == KindRejected:
		// A 4xx, or an answer that says the write was refused (a message accepted by the
		// API in status "rejected"): nothing happened.
		return Refused
	case e.Status != 0:
		return Unknown // 5xx, or a 2xx (or 3xx) we could not use
	case e.Kind == KindConfig:
		// Built on our side before anything was sent: missing settings or credentials.
		return NotSent
	}
	return Unknown
}

// InDoubt reports whether a failed write may have taken effect: WriteOutcome is Unknown.
func InDoubt(err error) bool { return err != nil && WriteOutcome(err) == Unknown }

// notSent marks an error as raised before the request was sent.
func notSent(e *Error) *Error {
	e.unsent = true
	return e
}
