package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// withEnvFile takes --env-file <file> out of args and returns a getenv that reads the caller's
// environment first and the file second. The file is a stack's configuration: KEY=VALUE lines
// (`export` and quotes allowed; what `make run` writes) or a JSON object of variables (what
// `aws lambda get-function-configuration --query Environment.Variables` prints). AWS_* entries
// not already set are also put in the process environment, where the AWS SDK reads them.
func withEnvFile(args []string, getenv func(string) string) ([]string, func(string) string, error) {
	var path string
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--env-file" || a == "-env-file":
			if i+1 >= len(args) {
				return nil, nil, usageError("--env-file needs a file")
			}
			path = args[i+1]
			i++
		case strings.HasPrefix(a, "--env-file=") || strings.HasPrefix(a, "-env-file="):
			_, path, _ = strings.Cut(a, "=")
		default:
			rest = append(rest, a)
		}
	}
	if path == "" {
		return args, getenv, nil
	}
	vars, err := readEnvFile(path)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range vars {
		if strings.HasPrefix(k, "AWS_") && os.Getenv(k) == "" {
			if err := os.Setenv(k, v); err != nil {
				return nil, nil, err
			}
		}
	}
	return rest, func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return vars[k]
	}, nil
}

func readEnvFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--env-file: %w", err)
	}
	vars := map[string]string{}
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		if err := json.Unmarshal(t, &vars); err != nil {
			return nil, fmt.Errorf("--env-file %s: not a JSON object of strings: %w", path, err)
		}
		return vars, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--env-file %s:%d: want KEY=VALUE", path, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			if v[0] == '"' {
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
			} else {
				v = v[1 : len(v)-1]
			}
		}
		vars[strings.TrimSpace(k)] = v
	}
	return vars, sc.Err()
}
