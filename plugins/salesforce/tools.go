package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/pdk"
)

// --- soql_query ---

type queryResult struct {
	Object  string           `json:"object"`
	Records []map[string]any `json:"records"`
	Count   int              `json:"count"`
	More    bool             `json:"more"`
}

// queryPage is one page of a Salesforce query response.
type queryPage struct {
	TotalSize      int              `json:"totalSize"`
	Done           bool             `json:"done"`
	NextRecordsURL string           `json:"nextRecordsUrl"`
	Records        []map[string]any `json:"records"`
}

func soqlQuery() error {
	var args queryArgs
	s, err := begin(&args)
	if err != nil {
		return err
	}
	object, err := s.object(args.Object)
	if err != nil {
		return err
	}
	limit := args.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxRows)
	// One row more than asked for tells whether more exist.
	soql, err := buildSOQL(args, object, limit+1)
	if err != nil {
		return err
	}
	out := queryResult{Object: object, Records: []map[string]any{}}
	next := s.dataURL("/query?q=" + url.QueryEscape(soql))
	done := false
	for page := 0; page < maxPages && !done && len(out.Records) <= limit; page++ {
		var p queryPage
		if _, err := send(request{method: http.MethodGet, url: next, what: "the query on " + object}, &p); err != nil {
			return err
		}
		for _, r := range p.Records {
			out.Records = append(out.Records, stripAttributes(r))
		}
		done = p.Done || p.NextRecordsURL == ""
		if !done {
			if !nextRecordsRE.MatchString(p.NextRecordsURL) {
				return pdk.Fatal("unexpected_response", "Salesforce sent a nextRecordsUrl this connector does not follow")
			}
			next = s.instance + p.NextRecordsURL
		}
	}
	out.More = !done || len(out.Records) > limit
	if len(out.Records) > limit {
		out.Records = out.Records[:limit]
	}
	out.Count = len(out.Records)
	return pdk.Output(out)
}

// stripAttributes removes Salesforce's "attributes" (type and URL) from a record and the
// related records in it.
func stripAttributes(r map[string]any) map[string]any {
	delete(r, "attributes")
	for k, v := range r {
		if m, ok := v.(map[string]any); ok {
			r[k] = stripAttributes(m)
		}
	}
	return r
}

// --- get_record ---

type getRecordArgs struct {
	Object string   `json:"object"`
	ID     string   `json:"id"`
	Fields []string `json:"fields,omitempty"`
}

type recordResult struct {
	Object string         `json:"object"`
	ID     string         `json:"id"`
	Record map[string]any `json:"record"`
}

// begin decodes a tool's arguments into args and loads the connector's settings: the first
// step of every tool.
func begin(args any) (*settings, error) {
	if err := pdk.Input(args); err != nil {
		return nil, err
	}
	return loadSettings()
}

// record checks an allowed object name and a record ID, and returns the object's API name.
func (s *settings) record(object, id string) (string, error) {
	name, err := s.object(object)
	if err != nil {
		return "", err
	}
	return name, checkID(id)
}

func checkID(id string) error {
	if !recordIDRE.MatchString(id) {
		return pdk.Correctable(pdk.CodeInvalidArguments,
			"%q is not a Salesforce record ID (15 or 18 letters and digits, such as 001D000000IRFmaIAH): use soql_query to find the record", truncate(id, 40))
	}
	return nil
}

func getRecord() error {
	var args getRecordArgs
	s, err := begin(&args)
	if err != nil {
		return err
	}
	object, err := s.record(args.Object, args.ID)
	if err != nil {
		return err
	}
	u := s.dataURL("/sobjects/" + object + "/" + args.ID)
	if len(args.Fields) > 0 {
		if len(args.Fields) > maxFields {
			return badQuery("ask for at most %d fields", maxFields)
		}
		for _, f := range args.Fields {
			if !validIdent(f) {
				return badField(f)
			}
		}
		u += "?fields=" + url.QueryEscape(strings.Join(args.Fields, ","))
	}
	var rec map[string]any
	if _, err := send(request{method: http.MethodGet, url: u, what: object + " " + args.ID, object: object, id: args.ID}, &rec); err != nil {
		return err
	}
	return pdk.Output(recordResult{Object: object, ID: args.ID, Record: stripAttributes(rec)})
}

// --- create_record and update_record ---

type writeArgs struct {
	Object string                     `json:"object"`
	ID     string                     `json:"id,omitempty"`
	Fields map[string]json.RawMessage `json:"fields"`
}

type writeResult struct {
	Object  string `json:"object"`
	ID      string `json:"id"`
	Created bool   `json:"created,omitempty"`
	Updated bool   `json:"updated,omitempty"`
}

const maxWriteFields = 100

// checkFields validates the field names and values of a write: plain field names, scalar values.
func checkFields(fields map[string]json.RawMessage) (map[string]any, error) {
	if len(fields) == 0 || len(fields) > maxWriteFields {
		return nil, pdk.Correctable(pdk.CodeInvalidArguments, "give between 1 and %d fields to set, e.g. {\"Name\": \"Acme\"}", maxWriteFields)
	}
	out := make(map[string]any, len(fields))
	for name, raw := range fields {
		if !validIdent(name) {
			return nil, badField(name)
		}
		if strings.EqualFold(name, "Id") {
			return nil, pdk.Correctable(pdk.CodeInvalidArguments, "Id cannot be set: Salesforce assigns it (update_record takes the ID separately)")
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, badQuery("the value of %s is not valid JSON", name)
		}
		switch v.(type) {
		case nil, bool, float64, string:
		default:
			return nil, badQuery("the value of %s must be a string, number, boolean or null (dates as text such as 2024-01-31)", name)
		}
		out[name] = raw
	}
	return out, nil
}

func createRecord() error {
	var args writeArgs
	s, err := begin(&args)
	if err != nil {
		return err
	}
	object, err := s.object(args.Object)
	if err != nil {
		return err
	}
	fields, err := checkFields(args.Fields)
	if err != nil {
		return err
	}
	var res struct {
		ID      string `json:"id"`
		Success bool   `json:"success"`
	}
	// No idempotency key: Salesforce would create a second record if the host replayed the
	// POST, so the host must not.
	if _, err := send(request{method: http.MethodPost, url: s.dataURL("/sobjects/" + object), body: fields,
		what: "the new " + object, object: object}, &res); err != nil {
		return err
	}
	if !res.Success || res.ID == "" {
		return pdk.Fatal("unexpected_response", "Salesforce did not confirm the new %s", object)
	}
	return pdk.Output(writeResult{Object: object, ID: res.ID, Created: true})
}

// idempotencyKey derives a key from the parts of a write, so that the same write asked for again
// carries the same key and the host may replay it safely.
func idempotencyKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "sf-" + hex.EncodeToString(h.Sum(nil))[:40]
}

func updateRecord() error {
	var args writeArgs
	s, err := begin(&args)
	if err != nil {
		return err
	}
	object, err := s.record(args.Object, args.ID)
	if err != nil {
		return err
	}
	fields, err := checkFields(args.Fields)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(fields) // sorted keys: the same update gives the same key
	// Setting fields to given values is idempotent, so the host may replay the PATCH.
	if _, err := send(request{method: http.MethodPatch, url: s.dataURL("/sobjects/" + object + "/" + args.ID), body: fields,
		key: idempotencyKey("update", object, args.ID, string(body)), what: object + " " + args.ID, object: object, id: args.ID}, nil); err != nil {
		return err
	}
	return pdk.Output(writeResult{Object: object, ID: args.ID, Updated: true})
}

// --- update_opportunity_stage ---

// defaultStages are Salesforce's standard opportunity stages; an org with its own sales process
// lists its stages in the opportunity_stages setting.
const (
	defaultStages       = "Prospecting,Qualification,Needs Analysis,Value Proposition,Id. Decision Makers,Perception Analysis,Proposal/Price Quote,Negotiation/Review,Closed Won,Closed Lost"
	defaultClosedStages = "Closed Won,Closed Lost"
)

type stageArgs struct {
	ID    string `json:"id"`
	Stage string `json:"stage"`
}

type stageResult struct {
	ID            string `json:"id"`
	Name          string `json:"name,omitempty"`
	PreviousStage string `json:"previous_stage"`
	Stage         string `json:"stage"`
	Changed       bool   `json:"changed"`
}

type opportunity struct {
	ID               string `json:"Id"`
	Name             string `json:"Name"`
	StageName        string `json:"StageName"`
	IsClosed         bool   `json:"IsClosed"`
	LastModifiedDate string `json:"LastModifiedDate"`
}

func configList(key, def string) []string {
	v, ok := pdk.Config(key)
	if !ok {
		v = def
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func readOpportunity(s *settings, id string) (opportunity, error) {
	var o opportunity
	u := s.dataURL("/sobjects/Opportunity/" + id + "?fields=" + url.QueryEscape("Id,Name,StageName,IsClosed,LastModifiedDate"))
	_, err := send(request{method: http.MethodGet, url: u, what: "Opportunity " + id, object: "Opportunity", id: id}, &o)
	return o, err
}

// updateOpportunityStage reads the opportunity's current stage, refuses transitions the sales
// process does not allow, and writes the new stage only if the record has not changed since it
// was read (If-Unmodified-Since), with an idempotency key so the host may replay the write.
func updateOpportunityStage() error {
	var args stageArgs
	s, err := begin(&args)
	if err != nil {
		return err
	}
	if err := checkID(args.ID); err != nil {
		return err
	}
	stages := configList("opportunity_stages", defaultStages)
	closed := configList("closed_stages", defaultClosedStages)
	target := ""
	for _, st := range stages {
		if strings.EqualFold(st, strings.TrimSpace(args.Stage)) {
			target = st
		}
	}
	if target == "" {
		return pdk.Correctable("unknown_stage", "%q is not an opportunity stage of this org; use one of: %s",
			truncate(args.Stage, 80), strings.Join(stages, ", "))
	}

	// Read before write.
	o, err := readOpportunity(s, args.ID)
	if err != nil {
		return err
	}
	res := stageResult{ID: args.ID, Name: o.Name, PreviousStage: o.StageName, Stage: target}
	if o.StageName == target {
		return pdk.Output(res) // nothing to do; no write
	}
	if o.IsClosed || slices.Contains(closed, o.StageName) {
		return pdk.Correctable("invalid_transition",
			"opportunity %s (%s) is already closed as %s, so this tool will not move it to %s; reopening a closed deal is a decision for a person in Salesforce",
			args.ID, truncate(o.Name, 80), o.StageName, target)
	}

	headers := map[string][]string{}
	if t, err := time.Parse("2006-01-02T15:04:05.000-0700", o.LastModifiedDate); err == nil {
		headers["If-Unmodified-Since"] = []string{t.UTC().Format(http.TimeFormat)}
	}
	_, err = send(request{method: http.MethodPatch, url: s.dataURL("/sobjects/Opportunity/" + args.ID),
		body: map[string]string{"StageName": target}, headers: headers,
		key:  idempotencyKey("stage", args.ID, o.StageName, target, o.LastModifiedDate),
		what: "Opportunity " + args.ID, object: "Opportunity", id: args.ID}, nil)
	var pe *pdk.Error
	if errors.As(err, &pe) && pe.Code == "conflict" {
		// The record changed since it was read: perhaps by a replay of this very write. If it
		// now has the target stage, the change is in place; otherwise let the agent decide again.
		now, rerr := readOpportunity(s, args.ID)
		if rerr != nil {
			return rerr
		}
		if now.StageName == target {
			res.Changed = true
			return pdk.Output(res)
		}
		return pdk.Retryable("conflict", 0,
			"opportunity %s changed in Salesforce while this call was running (its stage is now %s); look at it again before deciding on the stage",
			args.ID, now.StageName)
	}
	if err != nil {
		return err
	}
	res.Changed = true
	return pdk.Output(res)
}

// --- add_note ---

type noteArgs struct {
	ParentID  string `json:"parent_id"`
	Title     string `json:"title"`
	Body      string `json:"body"`
	IsPrivate bool   `json:"is_private,omitempty"`
}

type noteResult struct {
	ID       string `json:"id"`
	ParentID string `json:"parent_id"`
	Title    string `json:"title"`
}

// keyPrefixes are the ID prefixes of the standard objects a note may be attached to.
var keyPrefixes = map[string]string{"001": "Account", "003": "Contact", "006": "Opportunity", "500": "Case", "00Q": "Lead"}

const (
	maxNoteTitle = 80
	maxNoteBody  = 32000
)

func addNote() error {
	var args noteArgs
	s, err := begin(&args)
	if err != nil {
		return err
	}
	if err := checkID(args.ParentID); err != nil {
		return err
	}
	parent, known := keyPrefixes[args.ParentID[:3]]
	if !known {
		return pdk.Correctable("object_not_allowed", "notes can be attached to records of %s only; %s is not one of them", strings.Join(s.objects, ", "), args.ParentID)
	}
	if _, err := s.object(parent); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(args.Title) == "":
		return pdk.Correctable(pdk.CodeInvalidArguments, "the note needs a title")
	case len([]rune(args.Title)) > maxNoteTitle:
		return pdk.Correctable(pdk.CodeInvalidArguments, "the title is longer than %d characters; shorten it and put the rest in the body", maxNoteTitle)
	case len([]rune(args.Body)) > maxNoteBody:
		return pdk.Correctable(pdk.CodeInvalidArguments, "the body is longer than %d characters; shorten it or split it into several notes", maxNoteBody)
	}
	var res struct {
		ID      string `json:"id"`
		Success bool   `json:"success"`
	}
	// A classic Note (ParentId, Title, Body): one request, visible on the parent's related list.
	if _, err := send(request{method: http.MethodPost, url: s.dataURL("/sobjects/Note"),
		body: map[string]any{"ParentId": args.ParentID, "Title": args.Title, "Body": args.Body, "IsPrivate": args.IsPrivate},
		what: "the note on " + parent + " " + args.ParentID, object: parent, id: args.ParentID}, &res); err != nil {
		return err
	}
	if !res.Success || res.ID == "" {
		return pdk.Fatal("unexpected_response", "Salesforce did not confirm the new note")
	}
	return pdk.Output(noteResult{ID: res.ID, ParentID: args.ParentID, Title: args.Title})
}
