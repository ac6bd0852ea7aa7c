package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"strings"
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

// MariaDBUser returns a new MariaDB database (see MariaDB) and the mysql:// URL of a user of its
// own with the given password, who has every privilege on that database and none elsewhere (no
// FILE, no other database), with the admin connection. The user is dropped when the test ends.
func MariaDBUser(t testing.TB, password string) (string, *sql.DB) {
	t.Helper()
	dsn, admin := MariaDB(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	user := "u" + strings.TrimPrefix(db, "airlock_t_")
	for _, stmt := range []string{
		"CREATE USER '" + user + "'@'127.0.0.1' IDENTIFIED BY '" + strings.ReplaceAll(password, "'", "''") + "'",
		"GRANT ALL ON `" + db + "`.* TO '" + user + "'@'127.0.0.1'",
	} {
		if _, err := admin.Exec(stmt); err != nil {
			t.Fatalf("testenv: creating the database's user: %v", err)
		}
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP USER IF EXISTS '" + user + "'@'127.0.0.1'") })
	u.User = url.UserPassword(user, password)
	return u.String(), admin
}
