package config

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// secret is in every password of the tests' connection strings: no error
// may show it.
const secret = "s3cret"

func TestClusterInvalid(t *testing.T) {
	cases := []struct{ doc, err string }{
		{"[cluster]\nnode = \"mx1\"\n", `banwatch.toml:2: cluster.node: needs postgres = "..." (cluster mode is off without it)`},
		{"[cluster]\npostgres = \"\"\nbatch = \"1s\"\n", `banwatch.toml:3: cluster.batch: needs postgres = "..."`},
		{"[cluster]\nshare_strikes = true\n", `banwatch.toml:2: cluster.share_strikes: needs postgres = "..."`},
		{"[cluster]\nca_file = \"/etc/ssl/ca.pem\"\n", `banwatch.toml:2: cluster.ca_file: needs postgres = "..."`},
		{"[cluster]\npostgres = \"host=/run/postgresql\"\nnodes = \"mx1\"\n",
			`banwatch.toml:3: cluster.nodes: unknown key (known in [cluster]: postgres, node, password_file, ca_file, cert_file, key_file, share_strikes, batch)`},
		{"[clusters]\npostgres = \"host=/run/postgresql\"\n", `banwatch.toml:1: clusters: unknown table (banwatch.toml holds [daemon], [notify], [cluster] and [web])`},
		{"cluster = \"postgres://bw:Pw-s3cret@db/banwatch\"\n", `banwatch.toml:1: cluster: type mismatch`},
		{"[cluster]\npostgres = \"host=/run/postgresql\"\nshare_strikes = \"yes\"\n", `banwatch.toml:3: cluster.share_strikes: incompatible types`},

		// The connection string; a password never shows.
		{"[cluster]\npostgres = \"postgres://bw:Pw-s3cret@db.example:5432/banwatch?sslmode=verfy-full\"\n",
			`banwatch.toml:2: cluster.postgres: "postgres://bw:***@db.example:5432/banwatch?sslmode=verfy-full": sslmode "verfy-full": want one of disable, allow, prefer, require, verify-ca, verify-full`},
		{"[cluster]\npostgres = \"host=db port=99999 user=bw password=Pw-s3cret\"\n",
			`banwatch.toml:2: cluster.postgres: "host=db port=99999 user=bw password=***": a port is a number from 1 to 65535`},
		{"[cluster]\npostgres = \"host=db password='Pw s3cret' sslmode=nope\"\n",
			`cluster.postgres: "host=db password=*** sslmode=nope": sslmode "nope": want one of`},
		{"[cluster]\npostgres = \"host=db password='Pw-s3cret\"\n", `cluster.postgres: "host=db password=***": a quoted value is not closed`},
		{"[cluster]\npostgres = \"host=db password=Pw s3cret\"\n", `cluster.postgres: "host=db password=***": want keyword=value pairs or a postgres:// URL`},
		{"[cluster]\npostgres = \"host=db password=Pw-s3cret s3cret sslmode=x\"\n", `cluster.postgres: "host=db password=*** sslmode=x": want keyword=value pairs`},
		// An unescaped "/" in the password: libpq reads "Pw" as the port.
		{"[cluster]\npostgres = \"postgres://bw:Pw/s3cret@db/banwatch\"\n", `cluster.postgres: "postgres://bw:***@db/banwatch": a port is a number`},
		{"[cluster]\npostgres = \"postgres://bw:Pw%zzs3cret@db/banwatch\"\n", `cluster.postgres: "postgres://bw:***@db/banwatch": bad %-escape in the password`},
		{"[cluster]\npostgres = \"postgres://bw@db/banwatch?password=Pw-s3cret&sslmode=x\"\n",
			`cluster.postgres: "postgres://bw@db/banwatch?password=***&sslmode=x": sslmode "x"`},
		{"[cluster]\npostgres = \"postgres://bw@db/banwatch?sslmode\"\n", `cluster.postgres: "postgres://bw@db/banwatch?sslmode": a query parameter is key=value`},
		{"[cluster]\npostgres = \"postgres://bw@[::1/banwatch\"\n", `cluster.postgres: "postgres://bw@[::1/banwatch": bad [IPv6] host`},
		{"[cluster]\npostgres = \"mysql://bw:Pw-s3cret@db/banwatch\"\n", `cluster.postgres: "mysql://bw:***@db/banwatch": a URL is postgres:// or postgresql://, not mysql://`},
		{"[cluster]\npostgres = \"db.example.org\"\n", `banwatch.toml:2: cluster.postgres: "db.example.org": want keyword=value pairs or a postgres:// URL`},
		{"[cluster]\npostgres = \"host=a,b,c port=5432,5433\"\n", `cluster.postgres: "host=a,b,c port=5432,5433": 2 ports for 3 hosts`},
		{"[cluster]\npostgres = \"host=db connect_timeout=5s\"\n", `cluster.postgres: "host=db connect_timeout=5s": connect_timeout "5s": want whole seconds`},
		{"[cluster]\npostgres = \"host=db target_session_attrs=rw\"\n", `target_session_attrs "rw": want one of any, read-write`},
		{"[cluster]\npostgres = \"host=db sslrootcert=/etc/ssl/ca.pem\"\n", `cluster.postgres: "host=db sslrootcert=/etc/ssl/ca.pem": sslrootcert: set ca_file in [cluster] instead`},
		{"[cluster]\npostgres = \"postgres://db/banwatch?sslkey=/k.pem\"\n", `sslkey: set key_file in [cluster] instead`},
		{"[cluster]\npostgres = \"host=db passfile=/root/.pgpass\"\n", `passfile: set password_file in [cluster] instead`},

		// The other keys.
		{"[cluster]\npostgres = \"postgres://bw:Pw-s3cret@db/banwatch\"\npassword_file = \"/etc/banwatch/pg.pw\"\n",
			`banwatch.toml:3: cluster.password_file: postgres holds a password too: keep one of them`},
		{"[cluster]\npostgres = \"host=db password=Pw-s3cret\"\npassword_file = \"/etc/banwatch/pg.pw\"\n", `banwatch.toml:3: cluster.password_file: postgres holds a password too`},
		{"[cluster]\npostgres = \"host=db\"\npassword_file = \"pg.pw\"\n", `banwatch.toml:3: cluster.password_file: must be an absolute path`},
		{"[cluster]\npostgres = \"host=db\"\nca_file = \"ca.pem\"\n", `banwatch.toml:3: cluster.ca_file: must be an absolute path`},
		{"[cluster]\npostgres = \"host=db\"\ncert_file = \"/etc/banwatch/client.pem\"\n", `banwatch.toml:3: cluster.cert_file: cert_file needs key_file`},
		{"[cluster]\npostgres = \"host=db\"\nkey_file = \"/etc/banwatch/client.key\"\n", `banwatch.toml:3: cluster.key_file: key_file needs cert_file`},
		{"[cluster]\npostgres = \"host=db sslmode=disable\"\n\nca_file = \"/etc/ssl/ca.pem\"\n", `banwatch.toml:4: cluster.ca_file: postgres has sslmode=disable, which turns TLS off`},
		{"[cluster]\npostgres = \"host=db\"\nnode = \"-mx1\"\n", `banwatch.toml:3: cluster.node: "-mx1": want 1 to 64 letters, digits, '.', '_' and '-', starting with a letter or digit`},
		{"[cluster]\npostgres = \"host=db\"\nnode = \"mx 1\"\n", `cluster.node: "mx 1": want 1 to 64`},
		{"[cluster]\npostgres = \"host=db\"\nnode = \"\"\n", `cluster.node: "": want 1 to 64`},
		{"[cluster]\npostgres = \"host=db\"\nnode = \"" + strings.Repeat("n", 65) + "\"\n", `cluster.node: "nnnn`},
		{"[cluster]\npostgres = \"host=db\"\nbatch = \"5ms\"\n", `banwatch.toml:3: cluster.batch: "5ms": want 10ms to 10s`},
		{"[cluster]\npostgres = \"host=db\"\nbatch = \"1m\"\n", `cluster.batch: "1m": want 10ms to 10s`},
		{"[cluster]\npostgres = \"host=db\"\nbatch = \"soon\"\n", `cluster.batch: bad duration "soon"`},
	}
	for _, c := range cases {
		t.Run(c.err, func(t *testing.T) {
			err := expectRefused(t, c.doc, c.err)
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%q: the error shows the password: %s", c.doc, err)
			}
		})
	}
}

func TestClusterValid(t *testing.T) {
	cases := []struct {
		name, doc string
		want      Cluster
	}{
		{"none", "", Cluster{}},
		{"empty table", "[cluster]\n", Cluster{}},
		{"postgres off", "[cluster]\npostgres = \"\"\n", Cluster{}},
		{"socket", "[cluster]\npostgres = \"host=/run/postgresql dbname=banwatch\"\n",
			Cluster{Postgres: "host=/run/postgresql dbname=banwatch", Batch: DefaultBatch}},
		{"all keys", `
[cluster]
postgres = "postgres://bw@db.example:5432/banwatch?sslmode=verify-full"
node = "mx1.eu-west_2"
password_file = "/etc/banwatch/pg.pw"
ca_file = "/etc/banwatch/ca.pem"
cert_file = "/etc/banwatch/client.pem"
key_file = "/etc/banwatch/client.key"
share_strikes = true
batch = "1s"
`, Cluster{Postgres: "postgres://bw@db.example:5432/banwatch?sslmode=verify-full", Node: "mx1.eu-west_2",
			PasswordFile: "/etc/banwatch/pg.pw", CAFile: "/etc/banwatch/ca.pem", CertFile: "/etc/banwatch/client.pem",
			KeyFile: "/etc/banwatch/client.key", ShareStrikes: true, Batch: time.Second}},
		{"bounds", "[cluster]\npostgres = \"host=db\"\nbatch = \"10ms\"\nnode = \"" + strings.Repeat("n", 64) + "\"\n",
			Cluster{Postgres: "host=db", Node: strings.Repeat("n", 64), Batch: 10 * time.Millisecond}},
		{"batch 10s", "[cluster]\npostgres = \"host=db\"\nbatch = \"10s\"\nshare_strikes = false\n",
			Cluster{Postgres: "host=db", Batch: 10 * time.Second}},
		{"hosts", "[cluster]\npostgres = \"postgresql://bw:Pw-s3cret@[2001:db8::1]:5432,db2.example/banwatch?target_session_attrs=read-write&connect_timeout=5\"\n",
			Cluster{Postgres: "postgresql://bw:Pw-s3cret@[2001:db8::1]:5432,db2.example/banwatch?target_session_attrs=read-write&connect_timeout=5", Batch: DefaultBatch}},
		{"quoted", `
[cluster]
postgres = "host=/run/postgresql dbname = 'ban watch' password='it\\'s s3cret' application_name=banwatchd"
`, Cluster{Postgres: `host=/run/postgresql dbname = 'ban watch' password='it\'s s3cret' application_name=banwatchd`, Batch: DefaultBatch}},
		{"tls", "[cluster]\npostgres = \"postgres://db/banwatch?ssl=true\"\nca_file = \"/etc/banwatch/ca.pem\"\n",
			Cluster{Postgres: "postgres://db/banwatch?ssl=true", CAFile: "/etc/banwatch/ca.pem", Batch: DefaultBatch}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadBanwatchTOML(t, c.doc)
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Daemon.Cluster
			if !got.Equal(&c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			if got.Enabled() != (c.want.Postgres != "") {
				t.Errorf("Enabled() = %v", got.Enabled())
			}
			if c.want.Postgres != "" {
				o := got
				o.ShareStrikes = !o.ShareStrikes
				if got.Equal(&o) {
					t.Error("a changed share_strikes is equal")
				}
			}
		})
	}
}

func TestRedactDSN(t *testing.T) {
	cases := []struct{ in, want string }{
		{"host=/run/postgresql dbname=banwatch", "host=/run/postgresql dbname=banwatch"},
		{"postgres://bw@db/banwatch", "postgres://bw@db/banwatch"},
		{"postgres://bw:Pw-s3cret@db:5432/banwatch?sslmode=verify-full", "postgres://bw:***@db:5432/banwatch?sslmode=verify-full"},
		{"postgres://bw:Pw@s3cret@db/banwatch", "postgres://bw:***@db/banwatch"},
		{"postgres://bw:Pw/s3cret@db/banwatch", "postgres://bw:***@db/banwatch"},
		{"postgres://bw@db/banwatch?password=Pw-s3cret", "postgres://bw@db/banwatch?password=***"},
		{"postgres://db/banwatch?sslpassword=Pw-s3cret&user=bw", "postgres://db/banwatch?sslpassword=***&user=bw"},
		{"host=db password=Pw-s3cret user=bw", "host=db password=*** user=bw"},
		{"password = Pw-s3cret", "password = ***"},
		{`host=db password='Pw s3cret\' x' user=bw`, "host=db password=*** user=bw"},
		{"host=db password='Pw s3cret", "host=db password=***"},
		{"host=db password=Pw s3cret user=bw", "host=db password=*** user=bw"},
		{"host=db password=Pw\\ s3cret", "host=db password=***"},
		{"host=db password=", "host=db password=***"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			if got := redactDSN(c.in); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
			cl := Cluster{Postgres: c.in}
			if got := cl.Redacted(); got != c.want {
				t.Errorf("Redacted() = %q, want %q", got, c.want)
			}
		})
	}
}

// checkDSN reads connection strings as pgx does: the settings they agree
// on, and pgx refuses what checkDSN refuses as malformed.
func TestCheckDSNAgreesWithPgx(t *testing.T) {
	// pgx reads the environment and the home directory; neither may
	// change its reading.
	t.Setenv("HOME", t.TempDir())
	for _, v := range []string{"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSSLMODE", "PGSERVICE",
		"PGTARGETSESSIONATTRS", "PGCONNECT_TIMEOUT", "PGCHANNELBINDING"} {
		t.Setenv(v, "")
	}
	valid := []string{
		"host=/run/postgresql dbname=banwatch",
		"host=db port=5433 user=bw password=Pw-s3cret dbname=banwatch sslmode=disable",
		"host=db  user = bw   password='it\\'s a s3cret'  dbname='ban watch' ",
		"host=db password=Pw\\ s3cret",
		"host=a,b,c port=5432 user=bw",
		"host=a,b port=5432,5433 user=bw",
		"postgres://bw:Pw-s3cret@db.example:5432/banwatch?sslmode=disable",
		"postgresql://bw@db.example/banwatch?sslmode=disable&application_name=banwatchd",
		"postgres://bw@%2Frun%2Fpostgresql/banwatch",
		"postgres:///banwatch?host=/run/postgresql&user=bw",
		"postgres://bw:Pw%40s3cret@[::1]:5433,db2:5434/banwatch?sslmode=disable",
		"postgres://bw@db/banwatch?ssl=true&sslmode=disable",
		"postgres://bw@db?dbname=banwatch&sslmode=disable",
	}
	for _, s := range valid {
		t.Run(s, func(t *testing.T) {
			got, err := checkDSN(s)
			if err != nil {
				t.Fatalf("checkDSN: %v", err)
			}
			pc, err := pgconn.ParseConfig(s)
			if err != nil {
				t.Fatalf("pgx: %v", err)
			}
			if u := got["user"]; u != "" && u != pc.User {
				t.Errorf("user %q, pgx %q", u, pc.User)
			}
			if got["password"] != pc.Password || got["database"] != pc.Database {
				t.Errorf("password %q database %q, pgx %q %q", got["password"], got["database"], pc.Password, pc.Database)
			}
			if h := got["host"]; h != "" && strings.Split(h, ",")[0] != pc.Host {
				t.Errorf("host %q, pgx %q", h, pc.Host)
			}
		})
	}
	malformed := []string{
		"host=db port=99999",
		"host=db password='open",
		"host=db password=a b",
		"host db",
		"=db",
		"postgres://bw@db/banwatch?sslmode",
		"postgres://bw@db/banwatch?a=b=c",
		"postgres://bw@[::1/banwatch",
		"postgres://bw@[]/banwatch",
		"postgres://bw:a%zz@db/banwatch",
		"postgres://bw@db:port/banwatch",
		"host=a,b,c port=1,2",
		"host=db sslmode=nope",
		"host=db target_session_attrs=rw",
		"host=db connect_timeout=x",
	}
	for _, s := range malformed {
		t.Run(s, func(t *testing.T) {
			if _, err := checkDSN(s); err == nil {
				t.Errorf("checkDSN accepts it")
			}
			if _, err := pgconn.ParseConfig(s); err == nil {
				t.Errorf("pgx accepts it")
			}
		})
	}
}
