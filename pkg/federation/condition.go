package federation

import (
	"context"
	"fmt"
	"regexp/syntax"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	lru "github.com/hashicorp/golang-lru/v2"
)

// MaxConditionLen bounds a condition's length, in bytes.
const MaxConditionLen = 2048

// conditionCost bounds one evaluation's cost in CEL's units (roughly
// operations): far above what a condition over a token's claims needs,
// far below what could slow an exchange.
const conditionCost = 1000

// A condition may not nest a loop (all, exists, map, filter) in another,
// nor compute a regular expression: matches() takes a literal, compiled
// once with the program, of at most maxRegexProgram instructions. With
// the cost limit, these bound an evaluation's work by the claims' size;
// ConditionTimeout bounds its time, whatever the claims.
const (
	maxLoopNesting  = 1
	maxRegexProgram = 256
)

// ConditionTimeout bounds the evaluation of all the conditions one
// exchange tries: past it, none that was not decided holds.
const ConditionTimeout = 50 * time.Millisecond

// DefaultConditionsKept is how many compiled conditions a service keeps: a
// program is tens of kilobytes, so this is not the token cache's size.
const DefaultConditionsKept = 1000

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
		cel.ASTValidators(
			cel.ValidateComprehensionNestingLimit(maxLoopNesting),
			literalRegexes{},
			cel.ValidateRegexLiterals(),
		),
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
// that fails (a claim it reads is missing, a type does not fit, ctx ended
// first) does not hold; the error says why, for the operator.
func (c *Conditions) Holds(ctx context.Context, expr string, claims map[string]any) (bool, error) {
	prg, err := c.program(expr)
	if err != nil {
		return false, err
	}
	out, _, err := prg.ContextEval(ctx, map[string]any{"claims": claims})
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
	p, err := c.env.Program(ast, cel.CostLimit(conditionCost), cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(10))
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

// literalRegexes refuses a matches() whose pattern is not a string literal
// (one computed from claims would be compiled at every evaluation, at a
// cost the cost limit does not count), or whose program is larger than
// maxRegexProgram instructions (matching costs their number times the
// input's length). cel.ValidateRegexProgramSizeLimit would measure the
// program, but it panics on a counted repetition ({n}): it compiles the
// expression without simplifying it first.
type literalRegexes struct{}

func (literalRegexes) Name() string { return "tokenservice.literal_regexes" }

func (literalRegexes) Validate(_ *cel.Env, _ cel.ValidatorConfig, a *ast.AST, iss *cel.Issues) {
	for _, call := range ast.MatchDescendants(ast.NavigateAST(a), ast.FunctionMatcher(overloads.Matches)) {
		args := call.AsCall().Args()
		pattern := args[len(args)-1] // s.matches(p), matches(s, p)
		if pattern.Kind() != ast.LiteralKind {
			iss.ReportErrorAtID(pattern.ID(), "matches() takes a string literal as its pattern, not one computed from claims")
			continue
		}
		p, ok := pattern.AsLiteral().Value().(string)
		if !ok {
			continue // the type checker's to refuse
		}
		re, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			continue // cel.ValidateRegexLiterals says why
		}
		if prog, err := syntax.Compile(re.Simplify()); err != nil || len(prog.Inst) > maxRegexProgram {
			iss.ReportErrorAtID(pattern.ID(), "the regular expression is too large: at most %d instructions once compiled (a {n} repetition counts n times)", maxRegexProgram)
		}
	}
}
