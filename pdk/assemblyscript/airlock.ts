// airlock.ts: a thin typed AssemblyScript binding of the airlock plugin ABI (pdk/ABI.md), on top
// of the unmodified Extism AssemblyScript PDK (@extism/as-pdk). One file, no other dependency:
// copy it next to your connector (airlock init connector NAME --lang assemblyscript does).
//
//   import { input, output, http, HTTPRequest, fail, ToolError, Category } from "./airlock";
//
//   export function get_item(): i32 {
//     const args = input();
//     const resp = http(new HTTPRequest("GET", "https://api.example.com/v1/items/" + args.getString("id")).with("api_token"));
//     if (resp.error !== null) return fail(resp.error!);          // a host refusal, already written for the agent
//     ...
//     return output(JSONWriter.object().str("id", id).done());
//   }
//
// Extism's own HTTP (Http.request in other PDKs) is refused by the host: use http() here.
import { Host, Memory } from "@extism/as-pdk";
import { error_set, length } from "@extism/as-pdk/lib/env";

@external("extism:host/user", "airlock_http")
declare function airlock_http(req: u64): u64;
@external("extism:host/user", "airlock_config")
declare function airlock_config(key: u64): u64;
@external("extism:host/user", "airlock_log")
declare function airlock_log(level: u64, msg: u64): void;

// ---- errors (ABI.md, ToolError) ----

export namespace Category {
  export const Retryable = "retryable";
  export const Correctable = "correctable";
  export const Fatal = "fatal";
}

// ToolError is what a tool fails with: the agent gets its code, category and message.
export class ToolError {
  constructor(
    public code: string,
    public category: string,
    public message: string,
    public retryAfterMs: i64 = 0,
  ) {}

  toJSON(): string {
    const w = JSONWriter.object().str("code", this.code).str("category", this.category).str("message", this.message);
    if (this.retryAfterMs > 0) w.num("retry_after_ms", <f64>this.retryAfterMs);
    return w.done();
  }
}

// fail ends a tool call with err: return its result from the export.
export function fail(err: ToolError): i32 {
  const mem = Memory.allocateBytes(Uint8Array.wrap(String.UTF8.encode(err.toJSON())));
  error_set(mem.offset);
  return 1;
}

// ---- input, output, config, log ----

// input parses the call's arguments (a JSON object the host validated against input_schema).
export function input(): JSONValue {
  return JSON.parse(String.UTF8.decode(Host.input().buffer));
}

// output sets the call's JSON result; return its result from the export.
export function output(json: string): i32 {
  Host.output(Uint8Array.wrap(String.UTF8.encode(json)));
  return 0;
}

// config reads a non-secret setting the grant fills; "" when not set.
export function config(key: string): string {
  const off = airlock_config(Memory.allocateString(key).offset);
  if (off == 0) return "";
  return new Memory(off, length(off)).toString();
}

// log writes a line to the host's log: level 0 debug, 1 info, 2 warn, 3 error.
export function log(level: i32, message: string): void {
  airlock_log(<u64>level, Memory.allocateString(message).offset);
}

// ---- HTTP (ABI.md, airlock_http) ----

export class HTTPRequest {
  headers: Map<string, string> = new Map<string, string>();
  body: Uint8Array | null = null;
  credential: string = "";
  idempotencyKey: string = "";
  timeoutMs: i64 = 0;

  constructor(public method: string, public url: string) {}

  // with names the manifest's credential slot whose secret the host injects. Never a secret.
  with(slot: string): HTTPRequest {
    this.credential = slot;
    return this;
  }

  header(name: string, value: string): HTTPRequest {
    this.headers.set(name, value);
    return this;
  }

  toJSON(): string {
    const w = JSONWriter.object().str("method", this.method).str("url", this.url);
    const names = this.headers.keys();
    if (names.length > 0) {
      let h = "{";
      for (let i = 0; i < names.length; i++) {
        if (i > 0) h += ",";
        h += quote(names[i]) + ":[" + quote(this.headers.get(names[i])) + "]";
      }
      w.raw("headers", h + "}");
    }
    if (this.body !== null) w.str("body", base64Encode(this.body!));
    if (this.credential.length > 0) w.str("credential", this.credential);
    if (this.idempotencyKey.length > 0) w.str("idempotency_key", this.idempotencyKey);
    if (this.timeoutMs > 0) w.num("timeout_ms", <f64>this.timeoutMs);
    return w.done();
  }
}

export class HTTPResponse {
  status: i32 = 0;
  headers: JSONValue = new JSONValue();
  body: Uint8Array = new Uint8Array(0);
  // error is set when the host refused or failed the request (status is 0 then).
  error: ToolError | null = null;

  // header returns the first value of a response header (names in canonical form), or "".
  header(name: string): string {
    const v = this.headers.get(name);
    return v.kind == JSONKind.Array && v.arr.length > 0 ? v.arr[0].str : "";
  }

  bodyString(): string {
    return String.UTF8.decode(this.body.buffer);
  }
}

// http sends req through the host, which checks it against the manifest and grant and injects
// the credential. A refusal is a response with error set, never a trap.
export function http(req: HTTPRequest): HTTPResponse {
  const reqMem = Memory.allocateString(req.toJSON());
  const off = airlock_http(reqMem.offset);
  reqMem.free();
  const resp = new HTTPResponse();
  if (off == 0) {
    resp.error = new ToolError("plugin_failed", Category.Fatal, "the host did not answer the request");
    return resp;
  }
  const respMem = new Memory(off, length(off));
  const v = JSON.parse(respMem.toString());
  respMem.free();
  const e = v.get("error");
  if (e.kind == JSONKind.Object) {
    resp.error = new ToolError(e.getString("code"), e.getString("category"), e.getString("message"), <i64>e.get("retry_after_ms").num);
    return resp;
  }
  resp.status = <i32>v.get("status").num;
  resp.headers = v.get("headers");
  const b = v.getString("body");
  if (b.length > 0) resp.body = base64Decode(b);
  return resp;
}

// ---- JSON: enough for arguments, envelopes and upstream answers ----

export enum JSONKind { Null, Bool, Number, String, Array, Object }

export class JSONValue {
  kind: JSONKind = JSONKind.Null;
  bool: bool = false;
  num: f64 = 0;
  str: string = "";
  arr: JSONValue[] = [];
  keys: string[] = [];
  vals: JSONValue[] = [];

  // get returns the member key of an object, or a null value.
  get(key: string): JSONValue {
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] == key) return this.vals[i];
    }
    return new JSONValue();
  }

  // getString returns the string member key, or "" when it is missing or not a string.
  getString(key: string): string {
    return this.get(key).str;
  }

  isNull(): bool {
    return this.kind == JSONKind.Null;
  }
}

export class JSONError {
  constructor(public message: string) {}
}

export namespace JSON {
  // lastError is set when parse met invalid JSON (parse then returns a null value).
  export let lastError: string = "";

  export function parse(s: string): JSONValue {
    lastError = "";
    const p = new Parser(s);
    const v = p.value();
    p.space();
    if (p.i != s.length && lastError.length == 0) lastError = "trailing data at " + p.i.toString();
    return lastError.length > 0 ? new JSONValue() : v;
  }
}

class Parser {
  i: i32 = 0;
  constructor(public s: string) {}

  space(): void {
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      this.i++;
    }
  }

  bad(what: string): JSONValue {
    if (JSON.lastError.length == 0) JSON.lastError = what + " at " + this.i.toString();
    this.i = this.s.length;
    return new JSONValue();
  }

  value(): JSONValue {
    this.space();
    if (this.i >= this.s.length) return this.bad("unexpected end");
    const c = this.s.charCodeAt(this.i);
    const v = new JSONValue();
    if (c == 0x7b) { // {
      v.kind = JSONKind.Object;
      this.i++;
      this.space();
      if (this.s.charCodeAt(this.i) == 0x7d) { this.i++; return v; }
      while (this.i < this.s.length) {
        this.space();
        if (this.s.charCodeAt(this.i) != 0x22) return this.bad("expected a key");
        v.keys.push(this.string());
        this.space();
        if (this.s.charCodeAt(this.i) != 0x3a) return this.bad("expected ':'");
        this.i++;
        v.vals.push(this.value());
        this.space();
        const d = this.s.charCodeAt(this.i++);
        if (d == 0x7d) return v;
        if (d != 0x2c) return this.bad("expected ',' or '}'");
      }
      return this.bad("unterminated object");
    }
    if (c == 0x5b) { // [
      v.kind = JSONKind.Array;
      this.i++;
      this.space();
      if (this.s.charCodeAt(this.i) == 0x5d) { this.i++; return v; }
      while (this.i < this.s.length) {
        v.arr.push(this.value());
        this.space();
        const d = this.s.charCodeAt(this.i++);
        if (d == 0x5d) return v;
        if (d != 0x2c) return this.bad("expected ',' or ']'");
      }
      return this.bad("unterminated array");
    }
    if (c == 0x22) {
      v.kind = JSONKind.String;
      v.str = this.string();
      return v;
    }
    if (this.s.startsWith("true", this.i)) { this.i += 4; v.kind = JSONKind.Bool; v.bool = true; return v; }
    if (this.s.startsWith("false", this.i)) { this.i += 5; v.kind = JSONKind.Bool; return v; }
    if (this.s.startsWith("null", this.i)) { this.i += 4; return v; }
    const start = this.i;
    while (this.i < this.s.length) {
      const d = this.s.charCodeAt(this.i);
      if (!((d >= 0x30 && d <= 0x39) || d == 0x2d || d == 0x2b || d == 0x2e || d == 0x65 || d == 0x45)) break;
      this.i++;
    }
    if (this.i == start) return this.bad("unexpected character");
    v.kind = JSONKind.Number;
    v.num = parseFloat(this.s.substring(start, this.i));
    return v;
  }

  // string reads a quoted string starting at the opening quote.
  string(): string {
    this.i++;
    let out = "";
    let run = this.i;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c == 0x22) {
        out += this.s.substring(run, this.i);
        this.i++;
        return out;
      }
      if (c != 0x5c) { this.i++; continue; }
      out += this.s.substring(run, this.i);
      const e = this.s.charCodeAt(this.i + 1);
      this.i += 2;
      if (e == 0x6e) out += "\n";
      else if (e == 0x74) out += "\t";
      else if (e == 0x72) out += "\r";
      else if (e == 0x62) out += "\b";
      else if (e == 0x66) out += "\f";
      else if (e == 0x75) {
        out += String.fromCharCode(<i32>parseInt(this.s.substring(this.i, this.i + 4), 16));
        this.i += 4;
      } else out += String.fromCharCode(e); // \" \\ \/
      run = this.i;
    }
    this.bad("unterminated string");
    return "";
  }
}

// quote returns s as a JSON string literal.
export function quote(s: string): string {
  let out = "\"";
  let run = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c != 0x22 && c != 0x5c) continue;
    out += s.substring(run, i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else {
      const h = c.toString(16);
      out += "\\u" + "0000".substring(h.length) + h;
    }
    run = i + 1;
  }
  return out + s.substring(run) + "\"";
}

// JSONWriter builds one JSON object: JSONWriter.object().str("id", id).num("n", 1).done().
export class JSONWriter {
  private buf: string = "{";

  static object(): JSONWriter {
    return new JSONWriter();
  }

  raw(key: string, json: string): JSONWriter {
    if (this.buf.length > 1) this.buf += ",";
    this.buf += quote(key) + ":" + json;
    return this;
  }

  str(key: string, value: string): JSONWriter {
    return this.raw(key, quote(value));
  }

  num(key: string, value: f64): JSONWriter {
    return this.raw(key, Number.isInteger(value) ? (<i64>value).toString() : value.toString());
  }

  bool(key: string, value: bool): JSONWriter {
    return this.raw(key, value ? "true" : "false");
  }

  done(): string {
    return this.buf + "}";
  }
}

// ---- base64 (standard alphabet, padded: the envelopes' byte strings) ----

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

export function base64Encode(b: Uint8Array): string {
  let out = "";
  for (let i = 0; i < b.length; i += 3) {
    const n = (<u32>b[i] << 16) | (i + 1 < b.length ? <u32>b[i + 1] << 8 : 0) | (i + 2 < b.length ? <u32>b[i + 2] : 0);
    out += B64.charAt((n >> 18) & 63) + B64.charAt((n >> 12) & 63);
    out += i + 1 < b.length ? B64.charAt((n >> 6) & 63) : "=";
    out += i + 2 < b.length ? B64.charAt(n & 63) : "=";
  }
  return out;
}

export function base64Decode(s: string): Uint8Array {
  const out = new Uint8Array((s.length / 4) * 3);
  let n = 0;
  let bits: u32 = 0;
  let have = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let v: i32 = -1;
    if (c >= 0x41 && c <= 0x5a) v = c - 0x41;
    else if (c >= 0x61 && c <= 0x7a) v = c - 0x61 + 26;
    else if (c >= 0x30 && c <= 0x39) v = c - 0x30 + 52;
    else if (c == 0x2b) v = 62;
    else if (c == 0x2f) v = 63;
    if (v < 0) continue; // padding
    bits = (bits << 6) | <u32>v;
    have += 6;
    if (have >= 8) {
      have -= 8;
      out[n++] = <u8>((bits >> have) & 0xff);
    }
  }
  return out.slice(0, n);
}

// abort replaces AssemblyScript's default abort (an import the host refuses): it logs the
// message and traps, which fails the call as plugin_failed. Build with --use abort=airlock/abort
// (the path of this file without .ts).
export function abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  log(3, "abort: " + (message === null ? "" : message!) + " at " + (fileName === null ? "" : fileName!) + ":" + line.toString() + ":" + column.toString());
  unreachable();
}
