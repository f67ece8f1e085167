package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// prompter reads what a command asks for: from the terminal (passwords not
// echoed), or else line by line from stdin, so scripts can pipe them in.
// Secrets never come from a flag: flags show in ps and shell history.
type prompter struct {
	tty    *os.File // stdin, if a terminal
	lines  *bufio.Reader
	stderr io.Writer
}

func newPrompter(e *env) *prompter {
	p := &prompter{stderr: e.stderr}
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = f
	} else {
		p.lines = bufio.NewReader(io.LimitReader(e.stdin, 64<<10))
	}
	return p
}

// line reads one line: shown as typed on a terminal.
func (p *prompter) line(prompt string) (string, error) {
	if p.tty != nil {
		fmt.Fprintf(p.stderr, "%s: ", prompt)
		line, err := bufio.NewReader(p.tty).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	return p.next(prompt)
}

func (p *prompter) next(what string) (string, error) {
	line, err := p.lines.ReadString('\n')
	if errors.Is(err, io.EOF) && line == "" {
		return "", fmt.Errorf("%s: nothing on stdin (pipe it in, or run in a terminal)", strings.ToLower(what))
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading %s from stdin: %w", strings.ToLower(what), err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// password reads a password without echoing it.
func (p *prompter) password(prompt string) (string, error) {
	if p.tty == nil {
		return p.next(prompt)
	}
	fmt.Fprintf(p.stderr, "%s: ", prompt)
	b, err := term.ReadPassword(int(p.tty.Fd()))
	fmt.Fprintln(p.stderr)
	return string(b), err
}

// newPassword reads a new password: asked twice on a terminal, and checked
// against the password rules before anything is sent.
func (p *prompter) newPassword(prompt string) (string, error) {
	pw, err := p.password(prompt)
	if err != nil {
		return "", err
	}
	if p.tty != nil {
		again, err := p.password("Again")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("the passwords differ")
		}
	}
	return pw, domain.ValidatePassword("password", pw)
}
