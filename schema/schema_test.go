package schema_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/internal/testenv"
	"github.com/ridestream/ridestream/schema"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestMigrateIsIdempotent(t *testing.T) {
	ctx := context.Background()
	url := testenv.Get(t).NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	all, err := schema.Migrations()
	if err != nil || len(all) == 0 {
		t.Fatalf("migrations: %v (%d)", err, len(all))
	}
	applied, err := schema.Migrate(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(all) {
		t.Fatalf("first run applied %v, want all %d", applied, len(all))
	}
	again, err := schema.Migrate(ctx, conn)
	if err != nil || len(again) != 0 {
		t.Fatalf("second run applied %v (%v), want nothing", again, err)
	}
	for _, table := range []string{schema.TableRides, schema.TableRejected, schema.TableLateRides, schema.TableSinkProgress, "ridestream_tables"} {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing after migrate (%v)", table, err)
		}
	}
	// Aggregation tables are the sink's to create, from its pipeline's
	// declaration: an empty schema has none.
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('hourly_revenue') IS NOT NULL").Scan(&ok); err != nil || ok {
		t.Errorf("hourly_revenue in a schema no pipeline has written (%v)", err)
	}
}

func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	ctx := context.Background()
	url := testenv.Get(t).NewDatabase(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			_, err = schema.Migrate(ctx, conn)
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if all, _ := schema.Migrations(); n != len(all) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(all))
	}
}
