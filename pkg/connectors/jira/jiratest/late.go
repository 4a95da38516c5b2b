package jiratest

import "time"

// AnswerLate makes the next times API requests under prefix take effect at once but be
// answered only after delay (or never, if the client goes away first), as when a Lambda
// times out or crashes after Jira created the request but before it read the answer. It is
// Fail with an AfterEffect failure that has neither a status nor a reset.
func (s *Server) AnswerLate(prefix string, delay time.Duration, times int) {
	s.Fail(prefix, Failure{AfterEffect: true, Delay: delay, Times: times})
}
