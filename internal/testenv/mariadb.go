package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBEnv is the variable .ci/services exports: a mysql:// URL whose user may create
// databases, mysql://airlock:airlock@127.0.0.1:53306/airlock_test.
const MariaDBEnv = "AIRLOCK_TEST_MARIADB"

// MariaDB returns the mysql:// URL of a new, empty MariaDB database that is dropped when the
// test ends, and an admin connection to it (the driver's form of the URL) for setup and checks.
func MariaDB(t testing.TB) (string, *sql.DB) {
	t.Helper()
	base := need(t, MariaDBEnv, "MariaDB")
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "mysql" {
		t.Fatalf("testenv: %s is not a mysql:// URL", MariaDBEnv)
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User = "tcp", u.Host, u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "airlock_t_" + hex.EncodeToString(b[:])
	if _, err := server.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		server.Close()
		t.Fatalf("testenv: creating database %s: %v", name, err)
	}
	cfg.DBName = name
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		defer server.Close()
		if _, err := server.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Logf("testenv: dropping %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String(), admin
}
