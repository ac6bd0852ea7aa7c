// The get_item tool: it fetches one item from the upstream API. manifest.yaml declares the tool,
// the host and path it may reach and the credential slot the host fills; this code never sees
// the secret.
import { input, output, fail, http, HTTPRequest, ToolError, Category, JSON, JSONKind, JSONWriter } from "./airlock";

// The upstream API: manifest.yaml allows exactly this host and path prefix.
const apiBase = "https://api.example.com/v1/";

// The manifest's credential slot: the host injects its secret into requests that name it.
const credential = "api_token";

// validID checks the id again (the host validated it against the input schema), since it goes
// into a URL path: 1 to 64 lowercase letters, digits or '-'.
function validID(id: string): bool {
  if (id.length < 1 || id.length > 64) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d)) return false;
  }
  return true;
}

export function get_item(): i32 {
  const id = input().getString("id");
  if (!validID(id)) {
    return fail(new ToolError("invalid_id", Category.Correctable, "id must be 1 to 64 lowercase letters, digits or '-'"));
  }
  const resp = http(new HTTPRequest("GET", apiBase + "items/" + id).with(credential));
  if (resp.error !== null) {
    return fail(resp.error!); // a host refusal: its message is already written for the agent
  }
  if (resp.status == 404) {
    return fail(new ToolError("not_found", Category.Correctable, "there is no item \"" + id + "\": check the id"));
  }
  if (resp.status == 401 || resp.status == 403) {
    return fail(new ToolError("unauthorized", Category.Fatal, "the API refused the credential: an admin must check the api_token secret"));
  }
  if (resp.status == 429) {
    const after = resp.header("Retry-After");
    return fail(new ToolError("rate_limited", Category.Retryable, "the API is rate limiting us", after.length > 0 ? <i64>(parseFloat(after) * 1000) : 0));
  }
  if (resp.status != 200) {
    return fail(new ToolError("upstream_error", Category.Retryable, "the API answered HTTP " + resp.status.toString()));
  }
  const item = JSON.parse(resp.bodyString());
  if (item.get("id").kind != JSONKind.String) {
    return fail(new ToolError("bad_upstream_response", Category.Fatal, "the API sent an answer this connector cannot read"));
  }
  return output(JSONWriter.object().str("id", item.getString("id")).str("title", item.getString("title")).done());
}
