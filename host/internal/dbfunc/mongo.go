package dbfunc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
)

// mongoDB runs MongoDB operations (manifest.MongoOp) through the official driver, on the
// database the DSN's path names. Reads only ever send find or aggregate (a pipeline with $out or
// $merge is refused before it is sent); every command carries maxTimeMS = timeout_ms (reads
// write it into the command, writes get it from the driver, from their deadline). The driver
// monitors the server in the background from Open on; a server that is down fails calls, not
// Open.
type mongoDB struct {
	client *mongo.Client
	db     *mongo.Database
	run    *options.RunCmdOptionsBuilder // the DSN's read preference (RunCommand's default is primary)
}

// mongoBatch is the most documents a cursor batch holds: the first answer of a read is at most
// this (or max_rows + 1), so a cap passed early leaves the server with little done; the cursor
// is killed then.
const mongoBatch = 100

// isMongo reports whether dsn is a MongoDB connection string.
func isMongo(dsn string) bool {
	return strings.HasPrefix(dsn, "mongodb://") || strings.HasPrefix(dsn, "mongodb+srv://")
}

// openMongo parses dsn (mongodb://user:password@host:port/database?options), tells the scrubber
// its password in every form, and prepares a client whose pool holds at most maxConns
// connections. Nothing connects yet. tune, for tests, may add monitors to the options.
func openMongo(dsn string, s *scrub.Scrubber, maxConns int, tune func(*options.ClientOptions)) (backend, error) {
	cs, err := connstring.Parse(dsn)
	if err != nil {
		return nil, ErrDSN
	}
	for _, secret := range []string{cs.Password, url.QueryEscape(cs.Password), url.PathEscape(cs.Password)} {
		if len(secret) >= 4 {
			s.Add(secret)
		}
	}
	if cs.SSLClientCertificateKeyPasswordSet && cs.SSLClientCertificateKeyPassword != nil {
		s.Add(cs.SSLClientCertificateKeyPassword())
	}
	for _, v := range cs.AuthMechanismProperties {
		if len(v) >= 4 {
			s.Add(v)
		}
	}
	if cs.Database == "" {
		return nil, ErrMongoDatabase
	}
	opts := options.Client().ApplyURI(dsn).
		SetMaxPoolSize(uint64(maxConns)).
		SetMaxConnIdleTime(5 * time.Minute).
		SetAppName("airlock")
	if tune != nil {
		tune(opts)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, ErrDSN
	}
	run := options.RunCmd()
	if opts.ReadPreference != nil {
		run.SetReadPreference(opts.ReadPreference)
	}
	return &mongoDB{client: client, db: client.Database(cs.Database), run: run}, nil
}

// checkMongoKind refuses granted functions written for another kind of database than the DSN's:
// a MongoDB operation on an SQL database, or SQL on MongoDB.
func checkMongoKind(be backend, granted map[string]*manifest.DBFunction) error {
	_, isMongo := be.(*mongoDB)
	for _, name := range slices.Sorted(maps.Keys(granted)) {
		switch f := granted[name]; {
		case f.Mongo != nil && !isMongo:
			return fmt.Errorf("dbfunc: database function %s is a MongoDB operation, and the grant's database.dsn is not mongodb://…; grant the connector a MongoDB database", name)
		case f.Mongo == nil && f.SQL != "" && isMongo:
			return fmt.Errorf("dbfunc: database function %s is SQL, and the grant's database.dsn is a MongoDB database; grant the connector an SQL database", name)
		}
	}
	return nil
}

// ErrMongoDatabase: a MongoDB DSN without a database.
var ErrMongoDatabase = errors.New("dbfunc: the MongoDB DSN names no database: write it as the path, mongodb://user:password@host:port/DATABASE; fix the secret the grant's database.dsn names")

// mongoParams are the parameters as JSON (bindParams keeps them so for MongoDB).
func mongoParams(args []any) []json.RawMessage {
	raws := make([]json.RawMessage, len(args))
	for i, a := range args {
		raws[i], _ = a.(json.RawMessage)
	}
	return raws
}

// render puts the parameters into f's operation, refusing what Parse would have refused.
func (m *mongoDB) render(f *manifest.DBFunction, args []any, write bool) (*manifest.MongoRendered, error) {
	op := f.Mongo
	if op == nil {
		return nil, errNotMongo
	}
	if isWrite := op.Op == manifest.MongoInsertOne || op.Op == manifest.MongoUpdateOne; isWrite != write {
		return nil, errMongoReadWrite
	}
	r, err := op.Render(f, mongoParams(args))
	var pe *manifest.ParamError
	if errors.As(err, &pe) {
		return nil, &paramError{index: pe.Index, reason: pe.Reason}
	}
	if err != nil {
		return nil, &mongoRefused{err}
	}
	return r, nil
}

var (
	errNotMongo       = &mongoRefused{errors.New("it declares SQL, and its database is MongoDB")}
	errMongoReadWrite = &mongoRefused{errors.New("its operation and read_only disagree")}
)

// mongoRefused is an operation the host does not send (Parse refuses such a manifest).
type mongoRefused struct{ err error }

func (e *mongoRefused) Error() string { return "refused before sending: " + e.err.Error() }

func (m *mongoDB) read(ctx context.Context, f *manifest.DBFunction, args []any) (abi.DBResponse, error) {
	r, err := m.render(f, args, false)
	if err != nil {
		return abi.DBResponse{}, err
	}
	// The command carries maxTimeMS = timeout_ms (or what is left of the call, if less), so the
	// server stops it itself (the driver's Find and Aggregate leave maxTimeMS out, DRIVERS-2722,
	// hence commands written here); the call gives up pgBackstop later should the server not
	// answer.
	maxTime := f.Timeout()
	if dl, ok := ctx.Deadline(); ok { // the call ends sooner: so does the server's work
		maxTime = max(min(maxTime, time.Until(dl)), time.Millisecond)
	}
	maxTimeMS := int64(maxTime / time.Millisecond)
	ctx, cancel := serverTimed(ctx, maxTime+pgBackstop)
	defer cancel()
	limit := f.MaxRows + 1
	batch := int32(min(limit, mongoBatch))
	var cmd bson.D
	if f.Mongo.Op == manifest.MongoAggregate {
		pipeline := bson.A{}
		for _, s := range r.Pipeline {
			pipeline = append(pipeline, toBSON(s))
		}
		pipeline = append(pipeline, bson.D{{Key: "$limit", Value: int64(limit)}}) // the server stops there
		cmd = bson.D{{Key: "aggregate", Value: f.Mongo.Collection}, {Key: "pipeline", Value: pipeline},
			{Key: "cursor", Value: bson.D{{Key: "batchSize", Value: batch}}}, {Key: "maxTimeMS", Value: maxTimeMS}}
	} else {
		filter := any(bson.D{})
		if r.Filter != nil {
			filter = toBSON(r.Filter)
		}
		cmd = bson.D{{Key: "find", Value: f.Mongo.Collection}, {Key: "filter", Value: filter}}
		if r.Projection != nil {
			cmd = append(cmd, bson.E{Key: "projection", Value: toBSON(r.Projection)})
		}
		if r.Sort != nil {
			cmd = append(cmd, bson.E{Key: "sort", Value: toBSON(r.Sort)})
		}
		cmd = append(cmd, bson.E{Key: "limit", Value: int64(limit)}, bson.E{Key: "batchSize", Value: batch},
			bson.E{Key: "maxTimeMS", Value: maxTimeMS})
	}
	resp, err := m.collect(ctx, f, cmd)
	if err != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return abi.DBResponse{}, fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return resp, err
}

// serverTimed returns a context without ctx's deadline, so the driver adds no maxTimeMS of its
// own to a command that carries one, ended when ctx ends or, with cause DeadlineExceeded,
// after d.
func serverTimed(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	timer := time.AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	return c, func() {
		stop()
		timer.Stop()
		cancel(context.Canceled)
	}
}

// collect runs a read command and gathers its documents up to the function's caps; columns are
// the top-level fields in the order they first appear.
func (m *mongoDB) collect(ctx context.Context, f *manifest.DBFunction, cmd bson.D) (abi.DBResponse, error) {
	cur, err := m.db.RunCommandCursor(ctx, cmd, m.run)
	if err != nil {
		return abi.DBResponse{}, err
	}
	// Close kills the cursor on the server when documents are left (a cap was passed).
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		cur.Close(ctx)
	}()
	c := newCollector(f, false)
	cols := map[string]int{}
	for !c.done() && cur.Next(ctx) {
		var doc bson.D
		if err := cur.Decode(&doc); err != nil {
			return abi.DBResponse{}, err
		}
		row := make([]any, len(c.resp.Columns))
		for _, e := range doc {
			i, ok := cols[e.Key]
			if !ok {
				i = len(c.resp.Columns)
				cols[e.Key] = i
				c.resp.Columns = append(c.resp.Columns, e.Key)
				row = append(row, nil)
			}
			row[i] = mongoValue(e.Value)
		}
		if err := c.keep(row); err != nil {
			return abi.DBResponse{}, err
		}
	}
	if err := cur.Err(); err != nil {
		return abi.DBResponse{}, err
	}
	resp := c.result()
	if resp.Columns == nil {
		resp.Columns = []string{}
	}
	for i, row := range resp.Rows { // documents seen before a field first appeared lack it
		for len(row) < len(resp.Columns) {
			row = append(row, nil)
		}
		resp.Rows[i] = row
	}
	return resp, nil
}

func (m *mongoDB) write(ctx context.Context, f *manifest.DBFunction, args []any) (abi.DBResponse, error) {
	r, err := m.render(f, args, true)
	if err != nil {
		return abi.DBResponse{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.Timeout()) // the driver sends it as maxTimeMS
	defer cancel()
	coll := m.db.Collection(f.Mongo.Collection)
	resp := abi.DBResponse{Columns: []string{"_id"}, Rows: [][]any{}}
	if f.Mongo.Op == manifest.MongoInsertOne {
		res, err := coll.InsertOne(ctx, toBSON(r.Document))
		if err != nil {
			return abi.DBResponse{}, err
		}
		resp.Affected = 1
		resp.Rows = append(resp.Rows, []any{mongoValue(res.InsertedID)})
		return resp, nil
	}
	res, err := coll.UpdateOne(ctx, toBSON(r.Filter), toBSON(r.Update), options.UpdateOne().SetUpsert(f.Mongo.Upsert))
	if err != nil {
		return abi.DBResponse{}, err
	}
	resp.Affected = res.MatchedCount + res.UpsertedCount
	if res.UpsertedID != nil {
		resp.Rows = append(resp.Rows, []any{mongoValue(res.UpsertedID)})
	}
	return resp, nil
}

func (m *mongoDB) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.client.Disconnect(ctx)
}

// toBSON converts a rendered template (manifest.Doc, []any, json.Number …) to the driver's
// types, keeping key order. Nothing is interpreted: a key "$oid" stays a key.
func toBSON(v any) any {
	switch x := v.(type) {
	case manifest.Doc:
		d := make(bson.D, len(x))
		for i, f := range x {
			d[i] = bson.E{Key: f.Key, Value: toBSON(f.Value)}
		}
		return d
	case []any:
		a := make(bson.A, len(x))
		for i, e := range x {
			a[i] = toBSON(e)
		}
		return a
	case json.Number:
		if i, err := x.Int64(); err == nil {
			if int64(int32(i)) == i {
				return int32(i)
			}
			return i
		}
		f, _ := x.Float64()
		return f
	default:
		return x // nil, bool, string
	}
}

// mongoValue turns a decoded BSON value into one that encodes as plain JSON.
func mongoValue(v any) any {
	switch x := v.(type) {
	case bson.D:
		doc := make(manifest.Doc, len(x))
		for i, e := range x {
			doc[i] = manifest.Field{Key: e.Key, Value: mongoValue(e.Value)}
		}
		return doc
	case bson.A:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = mongoValue(e)
		}
		return out
	case int32:
		return int64(x)
	case bson.ObjectID:
		return x.Hex()
	case bson.DateTime:
		return x.Time().UTC().Format(time.RFC3339Nano)
	case bson.Decimal128:
		return x.String()
	case bson.Binary:
		return base64.StdEncoding.EncodeToString(x.Data)
	case bson.Timestamp:
		return strconv.FormatUint(uint64(x.T), 10) + "." + strconv.FormatUint(uint64(x.I), 10)
	case bson.Regex:
		return "/" + x.Pattern + "/" + x.Options
	default:
		return jsonValue(v)
	}
}

// classifyMongo maps a MongoDB driver error to the taxonomy (nil: not one of the driver's).
func classifyMongo(err error, timeout, unavailable *abi.Error, refused func(string) *abi.Error, correctable func(code, what string) *abi.Error) *abi.Error {
	var mr *mongoRefused
	if errors.As(err, &mr) {
		return refused("the host does not send this MongoDB operation (" + mr.err.Error() + ")")
	}
	var se mongo.ServerError
	switch {
	case mongo.IsTimeout(err):
		return timeout
	case mongo.IsDuplicateKeyError(err):
		return correctable("conflict", "a document with these values already exists; change the values or update the existing document")
	case mongo.IsNetworkError(err), errors.Is(err, mongo.ErrClientDisconnected), strings.Contains(err.Error(), "server selection"):
		return unavailable
	case errors.As(err, &se):
		switch {
		case se.HasErrorCode(50): // MaxTimeMSExpired
			return timeout
		case se.HasErrorCode(18), se.HasErrorCode(13): // AuthenticationFailed, Unauthorized
			return refused("the host could not sign in to the database or may not run this operation (an admin must check the grant's DSN and the user's roles)")
		case se.HasErrorCode(2), se.HasErrorCode(14), se.HasErrorCode(121): // BadValue, TypeMismatch, DocumentValidationFailure
			return correctable(abi.CodeInvalidArguments, "a parameter has a form or type the database does not accept here; check the types and values")
		case se.HasErrorCode(91), se.HasErrorCode(189), se.HasErrorCode(11600), se.HasErrorCode(11602), se.HasErrorCode(10107), se.HasErrorCode(13435):
			return unavailable // shutting down, stepping down, not primary
		}
		return refused(fmt.Sprintf("the MongoDB operation failed (%s)", mongoErrorNames(se)))
	}
	return nil
}

// mongoErrorNames are the server's error code names, which hold no data.
func mongoErrorNames(se mongo.ServerError) string {
	var ce mongo.CommandError
	if errors.As(se, &ce) && ce.Name != "" {
		return "error " + ce.Name
	}
	return "a server error"
}
