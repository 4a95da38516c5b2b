package jira

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// experimental is the opt-in header JSM's experimental endpoints (customer search) require.
var experimental = http.Header{"X-Experimentalapi": {"opt-in"}}

// FindCustomer looks a customer of a service desk up by email
// (GET /rest/servicedeskapi/servicedesk/{id}/customer?query=..., experimental). The query also
// matches names, so only an exact, case-insensitive email match counts. found is false when the
// desk has no such customer (or the site's privacy settings hide the address).
func (c *Client) FindCustomer(ctx context.Context, serviceDeskID, email string) (u User, found bool, err error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return User{}, false, rejected("find customer", "email is empty")
	}
	users, err := paged[User](ctx, c, "find customer", "/rest/servicedeskapi/servicedesk/"+escape(serviceDeskID)+"/customer", url.Values{"query": {email}}, experimental)
	if err != nil {
		return User{}, false, err
	}
	return matchEmail(users, email)
}

func matchEmail(users []User, email string) (User, bool, error) {
	for _, u := range users {
		if u.AccountID != "" && strings.EqualFold(strings.TrimSpace(u.EmailAddress), email) {
			return u, true, nil
		}
	}
	return User{}, false, nil
}

// CreateCustomer creates a portal customer (POST /rest/servicedeskapi/customer, 201). It asks for
// strictConflictStatusCode, so an existing email is a KindConflict (409) rather than a 400.
func (c *Client) CreateCustomer(ctx context.Context, email, displayName string) (User, error) {
	const op = "create customer"
	email = strings.TrimSpace(email)
	if email == "" || !strings.Contains(email, "@") {
		return User{}, rejected(op, "a customer needs an email address")
	}
	if strings.TrimSpace(displayName) == "" {
		displayName = email
	}
	body := map[string]string{"email": email, "displayName": displayName}
	var u User
	_, err := c.do(ctx, connectors.Request{Op: op, Method: http.MethodPost, Path: "/rest/servicedeskapi/customer",
		Query: url.Values{"strictConflictStatusCode": {"true"}}, Body: body}, &u)
	if err != nil {
		return User{}, err
	}
	if u.AccountID == "" {
		return User{}, &connectors.Error{System: System, Op: op, Status: http.StatusCreated, Kind: connectors.KindBadResponse, Message: "answer has no accountId"}
	}
	return u, nil
}

// AddCustomersToServiceDesk makes existing accounts customers of a desk (204; already-members
// are no-ops).
func (c *Client) AddCustomersToServiceDesk(ctx context.Context, serviceDeskID string, accountIDs ...string) error {
	if len(accountIDs) == 0 {
		return nil
	}
	_, err := c.do(ctx, connectors.Request{Op: "add customers", Method: http.MethodPost,
		Path: "/rest/servicedeskapi/servicedesk/" + escape(serviceDeskID) + "/customer",
		Body: map[string][]string{"accountIds": accountIDs}}, nil)
	return err
}

// SearchUsers searches every account on the site (GET /rest/api/3/user/search?query=...; prefix
// match on display name and email; its own rate-limit bucket).
func (c *Client) SearchUsers(ctx context.Context, query string) ([]User, error) {
	var users []User
	_, err := c.do(ctx, connectors.Request{Op: "search users", Method: http.MethodGet, Path: "/rest/api/3/user/search",
		Query: url.Values{"query": {query}, "maxResults": {"50"}}}, &users)
	return users, err
}

// ResolveCustomer returns the accountId of the customer with this email in a service desk,
// creating the customer (and adding them to the desk) when there is none. It is safe to run
// concurrently for the same email: when another caller created the account first (409), the
// account is looked up again, in the desk and then site-wide, and added to the desk.
func (c *Client) ResolveCustomer(ctx context.Context, serviceDeskID, email, displayName string) (string, error) {
	u, found, err := c.FindCustomer(ctx, serviceDeskID, email)
	if err != nil {
		return "", err
	}
	if found {
		return u.AccountID, nil
	}
	u, err = c.CreateCustomer(ctx, email, displayName)
	switch {
	case err == nil:
	case connectors.KindOf(err) == connectors.KindConflict:
		if u, found, err = c.FindCustomer(ctx, serviceDeskID, email); err != nil {
			return "", err
		}
		if found {
			return u.AccountID, nil
		}
		users, serr := c.SearchUsers(ctx, strings.TrimSpace(email))
		if serr != nil {
			return "", serr
		}
		if u, found, _ = matchEmail(users, strings.TrimSpace(email)); !found {
			return "", &connectors.Error{System: System, Op: "resolve customer", Status: http.StatusConflict, Kind: connectors.KindConflict,
				Message: "an account with this email exists but is not visible to the integration user; add it to the service desk"}
		}
	default:
		return "", err
	}
	if err := c.AddCustomersToServiceDesk(ctx, serviceDeskID, u.AccountID); err != nil {
		return "", err
	}
	return u.AccountID, nil
}
