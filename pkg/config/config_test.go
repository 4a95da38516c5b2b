package config_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/config"
)

// A deployer who got several variables wrong must learn about all of them from one failed cold
// start, and each message must name the variable to change.
func TestEveryProblemReportedAtOnce(t *testing.T) {
	r := config.FromMap(map[string]string{
		"TIMEOUT_MS":       "fast",
		"ATTEMPTS":         "0",
		"ENABLED":          "maybe",
		"JIRA_BASE_URL":    "jira.example.com",
		"MODE":             "loud",
		"PROJECT_KEY_RULE": "vip=ESC;broken",
	})
	r.Required("STATE_TABLE")
	r.Millis("TIMEOUT_MS", time.Second, 100*time.Millisecond, 10*time.Second)
	r.Int("ATTEMPTS", 3, 1, 5)
	r.Bool("ENABLED", true)
	r.URL("JIRA_BASE_URL", "")
	r.URL("SERVICENOW_BASE_URL", "")
	r.OneOf("MODE", "jira", "jira", "servicenow")
	r.Map("PROJECT_KEY_RULE")
	r.Problem("GENESYS_SECRET_ID", "is required when GENESYS_API_BASE_URL is set")

	err := r.Err()
	if err == nil {
		t.Fatal("Err() = nil; want every problem")
	}
	want := []string{"STATE_TABLE", "TIMEOUT_MS", "ATTEMPTS", "ENABLED", "JIRA_BASE_URL", "SERVICENOW_BASE_URL", "MODE", "PROJECT_KEY_RULE", "GENESYS_SECRET_ID"}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, name := range want {
		if !strings.HasPrefix(lines[i], name+": ") {
			t.Errorf("problem %d = %q; want it to start with %q", i, lines[i], name+": ")
		}
	}
	var ve *config.VarError
	if !errors.As(err, &ve) || ve.Name != "STATE_TABLE" {
		t.Errorf("errors.As(*VarError) = %v; want the first problem, STATE_TABLE", ve)
	}
	// the offending value is quoted, so the deployer sees what they actually set
	for _, v := range []string{`"fast"`, `"maybe"`, `"jira.example.com"`, `"loud"`, `"broken"`} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("error does not quote the bad value %s:\n%v", v, err)
		}
	}
}

func TestNoProblemsIsNil(t *testing.T) {
	r := config.FromMap(map[string]string{"STATE_TABLE": "state", "JIRA_BASE_URL": "https://acme.atlassian.net"})
	r.Required("STATE_TABLE")
	r.URL("JIRA_BASE_URL", "")
	r.Int("ATTEMPTS", 3, 1, 5)
	if err := r.Err(); err != nil {
		t.Fatalf("Err() = %v; want nil", err)
	}
}

func TestNewReadsProcessEnvironment(t *testing.T) {
	t.Setenv("CXBRIDGE_CONFIG_TEST", " from-env ")
	r := config.New(nil)
	if got := r.Required("CXBRIDGE_CONFIG_TEST"); got != "from-env" {
		t.Errorf("Required = %q; want the trimmed environment value", got)
	}
}

func TestRequiredAndString(t *testing.T) {
	r := config.FromMap(map[string]string{"SET": "value", "BLANK": "   "})
	if got := r.String("SET", "def"); got != "value" {
		t.Errorf("String(SET) = %q", got)
	}
	if got := r.String("BLANK", "def"); got != "def" {
		t.Errorf("String(BLANK) = %q; a blank variable must fall back to the default", got)
	}
	if got := r.String("UNSET", "def"); got != "def" {
		t.Errorf("String(UNSET) = %q", got)
	}
	r.Required("SET")
	if err := r.Err(); err != nil {
		t.Fatalf("Required(SET) recorded %v", err)
	}
	r.Required("BLANK")
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "BLANK: is required") {
		t.Errorf("Required(BLANK) error = %v; a blank value counts as missing", err)
	}
}

func TestInt(t *testing.T) {
	tests := []struct {
		value   string
		want    int
		problem string // "" = no problem
	}{
		{"", 3, ""},
		{"1", 1, ""},
		{"5", 5, ""},
		{" 4 ", 4, ""},
		{"0", 3, "is 0; want 1 to 5"},
		{"6", 3, "is 6; want 1 to 5"},
		{"-1", 3, "is -1; want 1 to 5"},
		{"2.5", 3, `is "2.5"; want a whole number`},
		{"three", 3, `is "three"; want a whole number`},
		{"99999999999999999999999", 3, "want a whole number"},
	}
	for _, tt := range tests {
		r := config.FromMap(map[string]string{"ATTEMPTS": tt.value})
		got := r.Int("ATTEMPTS", 3, 1, 5)
		if got != tt.want {
			t.Errorf("Int(%q) = %d; want %d", tt.value, got, tt.want)
		}
		checkProblem(t, r, "ATTEMPTS", tt.value, tt.problem)
	}
}

func TestMillisAndSeconds(t *testing.T) {
	tests := []struct {
		value   string
		want    time.Duration
		problem string
	}{
		{"", 3 * time.Second, ""},
		{"250", 250 * time.Millisecond, ""},
		{"100", 100 * time.Millisecond, ""},
		{"60000", time.Minute, ""},
		{"99", 3 * time.Second, "is 99; want 100 to 60000"},
		{"60001", 3 * time.Second, "is 60001; want 100 to 60000"},
		{"3s", 3 * time.Second, `is "3s"; want a whole number`},
	}
	for _, tt := range tests {
		r := config.FromMap(map[string]string{"BUDGET_MS": tt.value})
		got := r.Millis("BUDGET_MS", 3*time.Second, 100*time.Millisecond, time.Minute)
		if got != tt.want {
			t.Errorf("Millis(%q) = %v; want %v", tt.value, got, tt.want)
		}
		checkProblem(t, r, "BUDGET_MS", tt.value, tt.problem)
	}

	r := config.FromMap(map[string]string{"OPEN_FOR_S": "90", "TOO_LONG_S": "7200"})
	if got := r.Seconds("OPEN_FOR_S", time.Minute, time.Second, time.Hour); got != 90*time.Second {
		t.Errorf("Seconds(90) = %v", got)
	}
	if got := r.Seconds("TOO_LONG_S", time.Minute, time.Second, time.Hour); got != time.Minute {
		t.Errorf("Seconds(7200) = %v; want the default after a range problem", got)
	}
	checkProblem(t, r, "TOO_LONG_S", "7200", "is 7200; want 1 to 3600")
}

func TestBool(t *testing.T) {
	tests := []struct {
		value   string
		def     bool
		want    bool
		problem string
	}{
		{"", true, true, ""},
		{"", false, false, ""},
		{"true", false, true, ""},
		{"TRUE", false, true, ""},
		{"1", false, true, ""},
		{"yes", false, true, ""},
		{"On", false, true, ""},
		{"false", true, false, ""},
		{"0", true, false, ""},
		{"no", true, false, ""},
		{"off", true, false, ""},
		{"enabled", true, true, `is "enabled"; want true or false`},
		{"2", false, false, `is "2"; want true or false`},
	}
	for _, tt := range tests {
		r := config.FromMap(map[string]string{"FLAG": tt.value})
		if got := r.Bool("FLAG", tt.def); got != tt.want {
			t.Errorf("Bool(%q, def %v) = %v; want %v", tt.value, tt.def, got, tt.want)
		}
		checkProblem(t, r, "FLAG", tt.value, tt.problem)
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		value, def string
		want       string
		problem    string
	}{
		{"https://acme.atlassian.net", "", "https://acme.atlassian.net", ""},
		{"https://acme.atlassian.net/", "", "https://acme.atlassian.net", ""},
		{"http://127.0.0.1:8080/api//", "", "http://127.0.0.1:8080/api", ""},
		{"", "https://login.mypurecloud.com", "https://login.mypurecloud.com", ""},
		{"", "", "", "is required (an https:// URL)"},
		{"acme.atlassian.net", "", "", `is "acme.atlassian.net"; want an absolute http(s) URL`},
		{"ftp://files.example.com", "", "", "want an absolute http(s) URL"},
		{"https://", "", "", "want an absolute http(s) URL"},
		{"https://bad host/", "", "", "want an absolute http(s) URL"},
	}
	for _, tt := range tests {
		r := config.FromMap(map[string]string{"BASE_URL": tt.value})
		if got := r.URL("BASE_URL", tt.def); got != tt.want {
			t.Errorf("URL(%q) = %q; want %q", tt.value, got, tt.want)
		}
		checkProblem(t, r, "BASE_URL", tt.value, tt.problem)
	}
}

func TestOneOf(t *testing.T) {
	tests := []struct {
		value   string
		want    string
		problem string
	}{
		{"", "jira", ""},
		{"servicenow", "servicenow", ""},
		{"ServiceNow", "jira", `is "ServiceNow"; want one of jira, servicenow`},
		{"zendesk", "jira", `is "zendesk"; want one of jira, servicenow`},
	}
	for _, tt := range tests {
		r := config.FromMap(map[string]string{"TARGET": tt.value})
		if got := r.OneOf("TARGET", "jira", "jira", "servicenow"); got != tt.want {
			t.Errorf("OneOf(%q) = %q; want %q", tt.value, got, tt.want)
		}
		checkProblem(t, r, "TARGET", tt.value, tt.problem)
	}
}

func TestList(t *testing.T) {
	r := config.FromMap(map[string]string{"CODES": " a, b ,,c ,", "BLANK": " "})
	if got, want := r.List("CODES", nil), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("List = %q; want %q", got, want)
	}
	if got, want := r.List("BLANK", []string{"x"}), []string{"x"}; !reflect.DeepEqual(got, want) {
		t.Errorf("List(blank) = %q; want the default %q", got, want)
	}
}

func TestMap(t *testing.T) {
	tests := []struct {
		value   string
		want    map[string]string
		problem string
	}{
		{"", map[string]string{}, ""},
		{"vip=ESC; billing = BILL ;", map[string]string{"vip": "ESC", "billing": "BILL"}, ""},
		{"url=https://x.example/a=b", map[string]string{"url": "https://x.example/a=b"}, ""},
		{"empty=", map[string]string{"empty": ""}, ""},
		{"vip=ESC;nokey", map[string]string{"vip": "ESC"}, `entry "nokey" is not key=value`},
		{"=ESC", map[string]string{}, `entry "=ESC" is not key=value`},
	}
	for _, tt := range tests {
		r := config.FromMap(map[string]string{"RULES": tt.value})
		if got := r.Map("RULES"); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Map(%q) = %v; want %v", tt.value, got, tt.want)
		}
		checkProblem(t, r, "RULES", tt.value, tt.problem)
	}
}

func checkProblem(t *testing.T, r *config.Reader, name, value, problem string) {
	t.Helper()
	err := r.Err()
	if problem == "" {
		if err != nil {
			t.Errorf("%s=%q: unexpected problem %v", name, value, err)
		}
		return
	}
	if err == nil {
		t.Errorf("%s=%q: no problem recorded; want %q", name, value, problem)
		return
	}
	if !strings.HasPrefix(err.Error(), name+": ") || !strings.Contains(err.Error(), problem) {
		t.Errorf("%s=%q: problem = %q; want %q naming the variable", name, value, err, problem)
	}
}
