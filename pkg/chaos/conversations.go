package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// requestWait is how long an agent waits for an end user's first message to become a JSM
// request (the senders' redeliveries included) before giving up on answering it. A message that
// never arrives is reported as lost by the checks, not here.
const requestWait = 3 * time.Minute

// user is one WhatsApp end user: their messages become a JSM request, agents answer in it.
type user struct {
	Index      int
	Tag        string // chaos-u0007: in every text of this user's conversation
	MSISDN     string
	Messages   []string // texts the user sent
	Replies    []string // public agent comments: each must reach the user exactly once
	Notes      []string // internal agent comments: must never reach the user
	RequestKey string
	Problems   []string // what the fakes refused: the suite itself is wrong
}

func newUser(i int) *user {
	return &user{Index: i, Tag: fmt.Sprintf("chaos-u%04d", i), MSISDN: fmt.Sprintf("+4477009%05d", i)}
}

// text is a line of this user's conversation, tagged so the suite finds it anywhere.
func (u *user) text(kind string, n int, words string) string {
	return fmt.Sprintf("[%s %s%d] %s", u.Tag, kind, n, words)
}

// conversations runs every user's conversation, a few at a time, alongside the escalations.
func (r *run) conversations(ctx context.Context) {
	jobs := make(chan *user)
	var wg sync.WaitGroup
	for range min(len(r.users), 8) {
		wg.Go(func() {
			for u := range jobs {
				r.converse(ctx, u)
			}
		})
	}
	for _, u := range r.users {
		select {
		case jobs <- u:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
}

// converse plays one conversation: the user writes twice, an agent answers, adds an internal
// note, the user writes again, the agent answers again.
func (r *run) converse(ctx context.Context, u *user) {
	mb, j := r.st.MessageBird(), r.st.Jira()
	send := func(n int, words string) {
		t := u.text("m", n, words)
		u.Messages = append(u.Messages, t)
		if _, err := mb.Receive(messagebirdtest.Inbound{MSISDN: u.MSISDN, FirstName: "Chaos", LastName: fmt.Sprintf("User %d", u.Index), Text: t}); err != nil {
			u.Problems = append(u.Problems, "MessageBird fake refused the message: "+err.Error())
		}
	}
	comment := func(public bool, n int, words string) {
		kind, list := "n", &u.Notes
		if public {
			kind, list = "r", &u.Replies
		}
		t := u.text(kind, n, words)
		*list = append(*list, t)
		if _, err := j.AgentComment(u.RequestKey, t, public, jiratest.AgentAccountID); err != nil {
			u.Problems = append(u.Problems, "Jira fake refused the comment: "+err.Error())
		}
	}
	send(1, "Hello, the export in my dashboard fails since this morning.")
	if u.RequestKey = r.waitRequest(ctx, u); u.RequestKey == "" {
		send(2, "Is anybody there?") // no agent can answer; the checks report the first message lost
		return
	}
	send(2, "It says error 500 when I press Export.")
	pause(ctx, 300*time.Millisecond)
	comment(true, 1, "Thanks for reporting this, we are looking into it.")
	comment(false, 1, "Internal: reproduced on the staging tenant.")
	pause(ctx, 300*time.Millisecond)
	send(3, "Thank you, I will wait.")
	pause(ctx, 300*time.Millisecond)
	comment(true, 2, "A fix is rolling out now; please try again in ten minutes.")
}

// waitRequest waits until the user's first message is a JSM request and returns its key.
func (r *run) waitRequest(ctx context.Context, u *user) string {
	deadline := time.Now().Add(requestWait)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if keys := r.requestsOf(u); len(keys) > 0 {
			return keys[0]
		}
		pause(ctx, 250*time.Millisecond)
	}
	return ""
}

// requestsOf lists the conversation requests raised for a user (their tag in the request's own
// fields), oldest first.
func (r *run) requestsOf(u *user) []string {
	var keys []string
	for _, req := range r.st.Jira().Requests() {
		if req.ServiceDeskID == localstack.LocalChatDeskID && strings.Contains(fmt.Sprint(req.Fields), u.Tag) {
			keys = append(keys, req.Key)
		}
	}
	return keys
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
