package deploy

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads compose.yaml as docker compose would, with env as the
// environment: the Compose Specification's JSON schema (an unknown or misspelt
// key fails), interpolation, and the consistency checks (a dependency on a
// service, secret or volume that does not exist fails).
func loadCompose(dir string, env map[string]string) (*types.Project, error) {
	path, err := filepath.Abs(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(path),
		ConfigFiles: []types.ConfigFile{{Filename: path, Content: b}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SkipValidation = false
		o.SkipConsistencyCheck = false
		o.ResolvePaths = true
	})
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("no service %s", name)
	}
	return s
}

func env(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

// dsnRE is go-sql-driver/mysql's user:password@tcp(host:port)/dbname.
var dsnRE = regexp.MustCompile(`^([^:@]+):([^@]*)@tcp\(([^:)]+):(\d+)\)/([^?]+)(\?.*)?$`)

func TestCompose(t *testing.T) {
	p, err := loadCompose(".", map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if names := p.ServiceNames(); !slices.Equal(names, []string{"migrate", "mysql", "tokenservice"}) {
		t.Fatalf("services %v", names)
	}
	mysql, migrate, ts := service(t, p, "mysql"), service(t, p, "migrate"), service(t, p, "tokenservice")

	t.Run("order", func(t *testing.T) {
		for _, dep := range []struct {
			s             types.ServiceConfig
			on, condition string
		}{
			{migrate, "mysql", types.ServiceConditionHealthy},
			{ts, "migrate", types.ServiceConditionCompletedSuccessfully},
		} {
			d, ok := dep.s.DependsOn[dep.on]
			if !ok || d.Condition != dep.condition {
				t.Errorf("%s depends on %s: %v %+v, want condition %s", dep.s.Name, dep.on, ok, d, dep.condition)
			}
			if ok && !d.Required {
				t.Errorf("%s's dependency on %s is not required", dep.s.Name, dep.on)
			}
		}
		// service_healthy needs a healthcheck to wait for.
		if hc := mysql.HealthCheck; hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
			t.Errorf("mysql's healthcheck %+v: migrate would wait for it forever", hc)
		}
		if !strings.HasPrefix(mysql.Image, "mysql:8") {
			t.Errorf("mysql image %q, want MySQL 8", mysql.Image)
		}
	})

	t.Run("commands", func(t *testing.T) {
		if migrate.Image == "" || migrate.Image != ts.Image {
			t.Errorf("migrate runs image %q, tokenservice %q: want the same", migrate.Image, ts.Image)
		}
		for _, s := range []types.ServiceConfig{migrate, ts} {
			if s.Build == nil || filepath.Base(s.Build.Dockerfile) != "Dockerfile" || filepath.Base(s.Build.Context) != filepath.Base(mustAbs(t, "..")) {
				t.Errorf("%s: build %+v, want deploy/Dockerfile from the repository root", s.Name, s.Build)
			}
			if len(s.Entrypoint) != 0 {
				t.Errorf("%s overrides the image's entrypoint: %q", s.Name, s.Entrypoint)
			}
		}
		if !slices.Equal(migrate.Command, []string{"db", "migrate"}) {
			t.Errorf("migrate runs %q, want db migrate", migrate.Command)
		}
		if !slices.Equal(ts.Command, []string{"serve"}) {
			t.Errorf("tokenservice runs %q, want serve", ts.Command)
		}
		if migrate.Restart != "" && migrate.Restart != types.RestartPolicyNo {
			t.Errorf("migrate restart %q: a one-shot that restarts never completes", migrate.Restart)
		}
		for _, s := range []types.ServiceConfig{mysql, ts} {
			if s.Restart != types.RestartPolicyUnlessStopped && s.Restart != types.RestartPolicyAlways {
				t.Errorf("%s restart %q", s.Name, s.Restart)
			}
		}
	})

	t.Run("healthchecks", func(t *testing.T) {
		// The image is distroless: nothing but /tokenservice runs in it, so
		// its own healthcheck command asks /readyz on the HTTP port.
		want := []string{"CMD", "/tokenservice", "healthcheck", "--url", "http://127.0.0.1:8080"}
		if hc := ts.HealthCheck; hc == nil || hc.Disable || !slices.Equal(hc.Test, want) {
			t.Errorf("tokenservice healthcheck %+v, want %q", hc, want)
		}
		if hc := migrate.HealthCheck; hc != nil && !hc.Disable && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
			t.Errorf("migrate (one-shot) has a healthcheck %q", hc.Test)
		}
	})

	t.Run("environment", func(t *testing.T) {
		for _, s := range []types.ServiceConfig{migrate, ts} {
			if env(s, "TOKENSERVICE_DB_DRIVER") != "mysql" {
				t.Errorf("%s: TOKENSERVICE_DB_DRIVER=%q", s.Name, env(s, "TOKENSERVICE_DB_DRIVER"))
			}
			if env(s, "TOKENSERVICE_DB_DSN") != env(ts, "TOKENSERVICE_DB_DSN") {
				t.Errorf("migrate and tokenservice use different databases")
			}
		}
		for v, want := range map[string]string{
			"TOKENSERVICE_HTTP_ADDR":    ":8080",
			"TOKENSERVICE_GRPC_ADDR":    ":9090",
			"TOKENSERVICE_METRICS_ADDR": ":9464",
			"TOKENSERVICE_LOG_FORMAT":   "json",
			"TOKENSERVICE_ISSUER":       "http://localhost:8080",
		} {
			if got := env(ts, v); got != want {
				t.Errorf("tokenservice: %s=%q, want %q", v, got, want)
			}
		}
		checkDSN(t, p, "tokenservice")
	})

	t.Run("secret", func(t *testing.T) {
		kek, ok := p.Secrets["kek"]
		if !ok {
			t.Fatal("no secret kek")
		}
		if want := mustAbs(t, "secrets/kek"); kek.File != want {
			t.Errorf("secret kek from %q, want the file %s", kek.File, want)
		}
		var target string
		for _, s := range ts.Secrets {
			if s.Source == "kek" {
				target = s.Target
				if target == "" {
					target = s.Source
				}
				if !strings.HasPrefix(target, "/") {
					target = "/run/secrets/" + target
				}
			}
		}
		if target == "" {
			t.Fatal("tokenservice does not get the secret kek")
		}
		if got := env(ts, "TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE"); got != target {
			t.Errorf("TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE=%q, the secret is mounted at %q", got, target)
		}
		for _, s := range []types.ServiceConfig{mysql, migrate} {
			if len(s.Secrets) != 0 {
				t.Errorf("%s gets secrets %v; only tokenservice needs the key", s.Name, s.Secrets)
			}
		}
		// The key itself never goes into git.
		ignore, err := os.ReadFile("secrets/.gitignore")
		if err != nil || !slices.Contains(strings.Split(string(ignore), "\n"), "*") {
			t.Errorf("secrets/.gitignore does not ignore the key (%v)", err)
		}
	})

	t.Run("ports and hardening", func(t *testing.T) {
		published := map[uint32]string{}
		for _, port := range ts.Ports {
			published[port.Target] = port.HostIP
		}
		for _, target := range []uint32{8080, 9090, 9464} {
			hostIP, ok := published[target]
			if !ok {
				t.Errorf("tokenservice does not publish %d", target)
			} else if hostIP != "127.0.0.1" {
				t.Errorf("tokenservice publishes %d on %q, want the loopback only", target, hostIP)
			}
		}
		if len(mysql.Ports) != 0 {
			t.Errorf("mysql publishes %v", mysql.Ports)
		}
		for _, s := range []types.ServiceConfig{migrate, ts} {
			if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("%s: read_only %v, cap_drop %v, security_opt %v", s.Name, s.ReadOnly, s.CapDrop, s.SecurityOpt)
			}
			if s.User != "" && (s.User == "0" || strings.HasPrefix(s.User, "root")) {
				t.Errorf("%s runs as %s", s.Name, s.User)
			}
		}
	})
}

// TestComposePassword: a password from the environment reaches both MySQL
// and the DSN.
func TestComposePassword(t *testing.T) {
	p, err := loadCompose(".", map[string]string{"MYSQL_PASSWORD": "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if got := checkDSN(t, p, "tokenservice"); got != "s3cret" {
		t.Errorf("the DSN's password is %q, want MYSQL_PASSWORD's", got)
	}
}

// checkDSN checks that service's DSN names the mysql service, its user, its
// password and its database, and returns the password.
func checkDSN(t *testing.T, p *types.Project, name string) string {
	t.Helper()
	mysql := service(t, p, "mysql")
	dsn := env(service(t, p, name), "TOKENSERVICE_DB_DSN")
	m := dsnRE.FindStringSubmatch(dsn)
	if m == nil {
		t.Fatalf("%s: TOKENSERVICE_DB_DSN=%q is not user:password@tcp(host:port)/db", name, dsn)
	}
	user, password, host, port, db := m[1], m[2], m[3], m[4], m[5]
	if host != "mysql" || port != "3306" {
		t.Errorf("the DSN reaches %s:%s, not the mysql service", host, port)
	}
	for v, want := range map[string]string{"MYSQL_USER": user, "MYSQL_PASSWORD": password, "MYSQL_DATABASE": db} {
		if got := env(mysql, v); got != want {
			t.Errorf("mysql's %s=%q, the DSN's %q", v, got, want)
		}
	}
	return password
}

// TestComposeRejectsMistakes proves the loader catches what it is there for.
func TestComposeRejectsMistakes(t *testing.T) {
	orig, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"misspelt key":         {"depends_on:\n      migrate:", "depend_on:\n      migrate:"},
		"unknown condition":    {"condition: service_completed_successfully", "condition: service_completed"},
		"dependency on nobody": {"depends_on:\n      mysql:", "depends_on:\n      mariadb:"},
		"undefined secret":     {"secrets:\n      - kek", "secrets:\n      - key"},
	} {
		t.Run(name, func(t *testing.T) {
			broken := strings.Replace(string(orig), edit[0], edit[1], 1)
			if broken == string(orig) {
				t.Fatal("the edit changed nothing")
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := loadCompose(dir, map[string]string{}); err == nil {
				t.Error("the loader accepted it")
			} else {
				t.Log(err)
			}
		})
	}
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestComposeKeyFileOwner: Compose bind-mounts the key file with its host
// owner and mode, and serve refuses a file other users may read (0600 is
// the mode), so tokenservice runs as the uid TOKENSERVICE_UID names, the
// file's owner; without it as the image's nonroot user.
func TestComposeKeyFileOwner(t *testing.T) {
	for uid, want := range map[string]string{"": "65532", "1000": "1000"} {
		p, err := loadCompose(".", map[string]string{"TOKENSERVICE_UID": uid})
		if err != nil {
			t.Fatal(err)
		}
		if got := service(t, p, "tokenservice").User; got != want {
			t.Errorf("TOKENSERVICE_UID=%q: tokenservice runs as %q, want %q", uid, got, want)
		}
	}
}
