// Package config reads a function's configuration from the environment once per cold start.
//
// A Reader collects every problem instead of stopping at the first, so a deployer who got three
// variables wrong learns about all three from one failed cold start. Every message names the
// variable, because that is what the deployer has to change.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Reader reads typed values from an environment and remembers what was wrong with them.
type Reader struct {
	getenv func(string) string
	errs   []error
}

// New returns a Reader over getenv; nil means os.Getenv.
func New(getenv func(string) string) *Reader {
	if getenv == nil {
		getenv = os.Getenv
	}
	return &Reader{getenv: getenv}
}

// FromMap returns a Reader over a fixed environment, for tests and the local stack.
func FromMap(env map[string]string) *Reader {
	return New(func(k string) string { return env[k] })
}

// Problem records a problem with a variable that the typed readers cannot see, such as two
// variables that contradict each other.
func (r *Reader) Problem(name, format string, args ...any) {
	r.errs = append(r.errs, &VarError{Name: name, Problem: fmt.Sprintf(format, args...)})
}

// Err returns every problem found so far, or nil.
func (r *Reader) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return errors.Join(r.errs...)
}

// VarError is one problem with one environment variable.
type VarError struct {
	Name    string
	Problem string
}

func (e *VarError) Error() string { return e.Name + ": " + e.Problem }

func (r *Reader) raw(name string) string { return strings.TrimSpace(r.getenv(name)) }

// String returns the variable, or def when it is unset or blank.
func (r *Reader) String(name, def string) string {
	if v := r.raw(name); v != "" {
		return v
	}
	return def
}

// Required returns the variable and records a problem when it is unset or blank.
func (r *Reader) Required(name string) string {
	v := r.raw(name)
	if v == "" {
		r.Problem(name, "is required")
	}
	return v
}

// OneOf returns the variable (or def) and records a problem when it is not one of allowed.
func (r *Reader) OneOf(name, def string, allowed ...string) string {
	v := r.String(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.Problem(name, "is %q; want one of %s", v, strings.Join(allowed, ", "))
	return def
}

// Int returns the variable as an integer in [min, max], or def when unset.
func (r *Reader) Int(name string, def, min, max int) int {
	v := r.raw(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.Problem(name, "is %q; want a whole number", v)
		return def
	}
	if n < min || n > max {
		r.Problem(name, "is %d; want %d to %d", n, min, max)
		return def
	}
	return n
}

// Millis returns a duration given in milliseconds, in [min, max], or def when unset.
// Milliseconds rather than Go durations because that is what a CloudFormation parameter holds.
func (r *Reader) Millis(name string, def, min, max time.Duration) time.Duration {
	n := r.Int(name, int(def/time.Millisecond), int(min/time.Millisecond), int(max/time.Millisecond))
	return time.Duration(n) * time.Millisecond
}

// Seconds returns a duration given in seconds, in [min, max], or def when unset.
func (r *Reader) Seconds(name string, def, min, max time.Duration) time.Duration {
	n := r.Int(name, int(def/time.Second), int(min/time.Second), int(max/time.Second))
	return time.Duration(n) * time.Second
}

// Bool accepts true/false, 1/0, yes/no and on/off.
func (r *Reader) Bool(name string, def bool) bool {
	switch strings.ToLower(r.raw(name)) {
	case "":
		return def
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off":
		return false
	default:
		r.Problem(name, "is %q; want true or false", r.raw(name))
		return def
	}
}

// List splits a comma-separated variable, dropping blanks.
func (r *Reader) List(name string, def []string) []string {
	v := r.raw(name)
	if v == "" {
		return def
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// URL returns an absolute http(s) URL without a trailing slash. Required when def is "".
func (r *Reader) URL(name, def string) string {
	v := r.String(name, def)
	if v == "" {
		r.Problem(name, "is required (an https:// URL)")
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		r.Problem(name, "is %q; want an absolute http(s) URL", v)
		return ""
	}
	return strings.TrimRight(v, "/")
}

// Map parses "key=value;key=value" (the shape a CloudFormation string parameter can carry).
func (r *Reader) Map(name string) map[string]string {
	v := r.raw(name)
	out := map[string]string{}
	if v == "" {
		return out
	}
	for _, pair := range strings.Split(v, ";") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !ok || k == "" {
			r.Problem(name, "entry %q is not key=value", pair)
			continue
		}
		out[k] = val
	}
	return out
}
