package federation

import (
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	lru "github.com/hashicorp/golang-lru/v2"
)

// MaxConditionLen bounds a condition's length, in bytes.
const MaxConditionLen = 2048

// conditionCost bounds one evaluation's cost in CEL's units (roughly
// operations): far above what a condition over a token's claims needs,
// far below what could slow an exchange.
const conditionCost = 10000

// Conditions compiles the CEL conditions of federated credentials, over a
// token's claims as `claims` (a map from string to any JSON value), and
// keeps the compiled programs of those in use.
type Conditions struct {
	env      *cel.Env
	programs *lru.Cache[string, cel.Program]
}

// NewConditions returns a Conditions keeping up to size programs.
func NewConditions(size int) (*Conditions, error) {
	env, err := cel.NewEnv(
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
		cel.ParserExpressionSizeLimit(MaxConditionLen),
	)
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	programs, _ := lru.New[string, cel.Program](max(size, 1)) // size > 0: cannot fail
	return &Conditions{env: env, programs: programs}, nil
}

// Check compiles and type-checks a condition, returning the compiler's
// complaint in plain words: a syntax error, a function that does not
// exist, a result that cannot be true or false.
func (c *Conditions) Check(expr string) error {
	_, err := c.program(expr)
	return err
}

// Holds reports whether the condition is true of claims. An expression
// that fails (a claim it reads is missing, a type does not fit) does not
// hold; the error says why, for the operator.
func (c *Conditions) Holds(expr string, claims map[string]any) (bool, error) {
	prg, err := c.program(expr)
	if err != nil {
		return false, err
	}
	out, _, err := prg.Eval(map[string]any{"claims": claims})
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("the condition gave %s, not true or false", out.Type().TypeName())
	}
	return bool(b), nil
}

func (c *Conditions) program(expr string) (cel.Program, error) {
	if p, ok := c.programs.Get(expr); ok {
		return p, nil
	}
	if len(expr) > MaxConditionLen {
		return nil, fmt.Errorf("the condition is longer than %d bytes", MaxConditionLen)
	}
	ast, iss := c.env.Compile(expr)
	if iss.Err() != nil {
		return nil, compileError(iss)
	}
	switch t := ast.OutputType(); {
	case t.IsExactType(types.BoolType), t.IsExactType(types.DynType):
	default:
		return nil, fmt.Errorf("the condition gives a value of type %s, not true or false: compare claims with ==, !=, in, startsWith(), and join with && and ||", t)
	}
	p, err := c.env.Program(ast, cel.CostLimit(conditionCost))
	if err != nil {
		return nil, fmt.Errorf("the condition cannot run: %w", err)
	}
	c.programs.Add(expr, p)
	return p, nil
}

// compileError words the compiler's issues on one line each: where (the
// column) and what.
func compileError(iss *cel.Issues) error {
	var msgs []string
	for _, e := range iss.Errors() {
		msgs = append(msgs, fmt.Sprintf("at column %d: %s", e.Location.Column()+1, e.Message))
	}
	return fmt.Errorf("the condition is not valid CEL: %s", strings.Join(msgs, "; "))
}
