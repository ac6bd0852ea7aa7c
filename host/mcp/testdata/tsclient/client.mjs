// End-to-end check of `airlock serve` with the official TypeScript MCP SDK client.
// Driven by host/mcp/tsclient_test.go; run by hand with the same environment:
//
//   AIRLOCK_E2E_MODE=stdio AIRLOCK_E2E_COMMAND=airlock AIRLOCK_E2E_ARGS='["serve","--config","c.yaml"]' \
//   AIRLOCK_E2E_CONFIG=c.yaml AIRLOCK_E2E_INSTALLED="$(cat installed.yaml)" node client.mjs
//
// AIRLOCK_E2E_MODE is stdio (the client spawns AIRLOCK_E2E_COMMAND with AIRLOCK_E2E_ARGS, a JSON
// array) or http (the client connects to AIRLOCK_E2E_URL with AIRLOCK_E2E_TOKEN). The server
// starts with no connector; the client then "installs" Slack by writing AIRLOCK_E2E_INSTALLED to
// AIRLOCK_E2E_CONFIG and waits for notifications/tools/list_changed.
// Prints one line per check; exits 1 on the first failure.
import { writeFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { EmptyResultSchema, ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const env = process.env;
const mode = env.AIRLOCK_E2E_MODE;

function check(cond, what, detail) {
  if (!cond) {
    console.log(`FAIL ${what}${detail === undefined ? "" : ": " + JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok   ${what}`);
}

function textOf(result) {
  return (result.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("");
}

function transport(token) {
  if (mode === "stdio") {
    return new StdioClientTransport({
      command: env.AIRLOCK_E2E_COMMAND,
      args: JSON.parse(env.AIRLOCK_E2E_ARGS),
      env: getDefaultEnvironment(),
      stderr: "inherit",
    });
  }
  const headers = token === undefined ? {} : { Authorization: `Bearer ${token}` };
  return new StreamableHTTPClientTransport(new URL(env.AIRLOCK_E2E_URL), { requestInit: { headers } });
}

async function main() {
  if (mode === "http") {
    // No token, then a wrong one: refused with 401 before anything else.
    for (const [what, token] of [["no token", undefined], ["a wrong token", "airlock_agent_wrong"]]) {
      const c = new Client({ name: "airlock-e2e", version: "1.0.0" });
      let err;
      try {
        await c.connect(transport(token));
      } catch (e) {
        err = e;
      }
      check(err !== undefined && /401|unauthorized/i.test(String(err?.message ?? err) + String(err?.code ?? "")),
        `connecting with ${what} is refused with 401`, String(err));
      await c.close().catch(() => {});
    }
  }

  const client = new Client({ name: "airlock-e2e", version: "1.0.0" });
  let changed = 0;
  let onChanged = () => {};
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    changed++;
    onChanged();
  });
  await client.connect(transport(env.AIRLOCK_E2E_TOKEN));
  check(client.getServerCapabilities()?.tools?.listChanged === true, "the server advertises tools.listChanged");
  check(client.getServerVersion()?.name === "airlock", "the server is airlock", client.getServerVersion());

  let { tools } = await client.listTools();
  check(tools.length === 0, "no tools before a connector is installed", tools.map((t) => t.name));

  // Install the Slack connector while connected.
  let timer;
  const notified = new Promise((resolve, reject) => {
    onChanged = resolve;
    timer = setTimeout(() => reject(new Error("no notifications/tools/list_changed within 30 s")), 30000);
  });
  writeFileSync(env.AIRLOCK_E2E_CONFIG, env.AIRLOCK_E2E_INSTALLED);
  await notified;
  clearTimeout(timer);
  check(changed >= 1, "notifications/tools/list_changed after installing a connector");

  ({ tools } = await client.listTools());
  const post = tools.find((t) => t.name === "slack.post_message");
  check(post !== undefined, "tools/list has slack.post_message", tools.map((t) => t.name));
  check(post.inputSchema?.type === "object" && post.outputSchema?.type === "object", "it has input and output schemas");
  check(typeof post.description === "string" && post.description.length > 0, "it has a description");
  const list = tools.find((t) => t.name === "slack.list_channels");
  check(list?.annotations?.readOnlyHint === true && list?.annotations?.openWorldHint === true,
    "slack.list_channels is annotated read-only and open-world", list?.annotations);

  // A successful call: structuredContent (validated by the SDK against outputSchema) and text.
  const ok = await client.callTool({ name: "slack.post_message", arguments: { channel: "C0GENERAL", text: "hello from the TypeScript SDK" } });
  check(!ok.isError, "slack.post_message succeeds", textOf(ok));
  check(ok.structuredContent?.channel === "C0GENERAL" && typeof ok.structuredContent?.ts === "string",
    "its structuredContent is the posted message", ok.structuredContent);
  check(/<untrusted-data source="slack.post_message"/.test(textOf(ok)) && /untrusted data/.test(textOf(ok)),
    "its text content labels the upstream data as untrusted", textOf(ok));

  // A failure is a tool result with isError and an actionable message, not a protocol error.
  const bad = await client.callTool({ name: "slack.post_message", arguments: { channel: "C0OPS", text: "hello" } });
  check(bad.isError === true, "posting to a channel the bot is not in gives isError", bad);
  check(/invite/i.test(textOf(bad)) && /correctable/.test(textOf(bad)), "with a message saying what to do", textOf(bad));

  const invalid = await client.callTool({ name: "slack.post_message", arguments: { channel: "C0GENERAL" } });
  check(invalid.isError === true && /text/.test(textOf(invalid)), "missing arguments give isError naming the argument", textOf(invalid));

  // A method the server does not implement is a JSON-RPC error -32601, not an HTTP failure.
  let unknown;
  try {
    await client.request({ method: "tools/frobnicate", params: {} }, EmptyResultSchema);
  } catch (e) {
    unknown = e;
  }
  check(unknown?.code === -32601, "an unknown method gets JSON-RPC error -32601", String(unknown));

  await client.close();
  console.log("PASS");
}

main().catch((e) => {
  console.log(`FAIL ${e?.stack ?? e}`);
  process.exit(1);
});
