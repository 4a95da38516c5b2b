// Package cfnstack reads a deployed stack's status, outputs and parameters from CloudFormation
// (DescribeStacks), so operator tools take the stack's real values (its API URL, its table
// names, its parameters) instead of asking a person to copy them.
//
// It uses the real AWS SDK with the caller's credentials and region; the standard
// AWS_ENDPOINT_URL_CLOUDFORMATION points it elsewhere (cfnstacktest in tests).
package cfnstack

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/smithy-go"
)

// Stack is what DescribeStacks says of one stack.
type Stack struct {
	Name       string
	ID         string
	Status     string            // e.g. CREATE_COMPLETE, UPDATE_ROLLBACK_COMPLETE
	Outputs    map[string]string // OutputKey -> OutputValue
	Parameters map[string]string // ParameterKey -> ParameterValue (NoEcho values come back masked)
}

// ErrNotFound is returned for a stack name that does not exist in the region.
var ErrNotFound = errors.New("stack not found")

// Describe reads one stack by name (or stack id).
func Describe(ctx context.Context, cfg aws.Config, name string) (Stack, error) {
	client := cloudformation.NewFromConfig(cfg)
	out, err := client.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if err != nil {
		var ae smithy.APIError
		// CloudFormation answers an unknown stack with 400 ValidationError "Stack with id X does not exist".
		if errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "does not exist") {
			return Stack{}, fmt.Errorf("%w: %s in %s", ErrNotFound, name, cfg.Region)
		}
		return Stack{}, fmt.Errorf("describe stack %s: %w", name, err)
	}
	if len(out.Stacks) == 0 {
		return Stack{}, fmt.Errorf("%w: %s in %s", ErrNotFound, name, cfg.Region)
	}
	s := out.Stacks[0]
	st := Stack{Name: aws.ToString(s.StackName), ID: aws.ToString(s.StackId), Status: string(s.StackStatus),
		Outputs: map[string]string{}, Parameters: map[string]string{}}
	for _, o := range s.Outputs {
		st.Outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	for _, p := range s.Parameters {
		st.Parameters[aws.ToString(p.ParameterKey)] = aws.ToString(p.ParameterValue)
	}
	return st, nil
}

// Output returns one output, or an error that names the stack, its status and the outputs it
// does have (a stack still being created, or rolled back, has none yet).
func (s Stack) Output(key string) (string, error) {
	if v, ok := s.Outputs[key]; ok && v != "" {
		return v, nil
	}
	have := make([]string, 0, len(s.Outputs))
	for k := range s.Outputs {
		have = append(have, k)
	}
	sort.Strings(have)
	return "", fmt.Errorf("stack %s (%s) has no output %s (outputs: %s)", s.Name, s.Status, key, strings.Join(have, ", "))
}
