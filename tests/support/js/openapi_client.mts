// A TypeScript client of the running service, as an integrator makes one: types generated from
// /api/v1/schema by openapi-typescript (./schema.d.ts, beside this file once generated) and the
// calls made by openapi-fetch. tests/agentbot/test_generated_clients.py compiles it with tsc and
// drives it over stdin/stdout, one JSON line a call:
//   in:  {"method": "PATCH", "path": "/api/v1/webhooks/{webhook_id}", "params": {"webhook_id": "wh_…"}, "body": {…}}
//   out: {"status": 200, "body": {…}}
import createClient from "openapi-fetch";
import * as readline from "node:readline";
import type { paths } from "./schema.js";

const baseUrl = process.env.AGENTBOT_URL ?? "";
const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${process.env.AGENTBOT_KEY}` } });

// Checked by tsc against the generated types: the list of webhooks takes page and page_size and
// answers a page of webhooks.
async function firstWebhookIds(): Promise<string[]> {
  const { data } = await client.GET("/api/v1/webhooks", { params: { query: { page: 1, page_size: 50 } } });
  return (data?.results ?? []).map((webhook) => webhook.id);
}

type Call = { method: "GET" | "POST" | "PATCH" | "DELETE"; path: string; params?: Record<string, string>; body?: unknown };

async function call({ method, path, params, body }: Call): Promise<{ status: number; body: unknown }> {
  // The path comes from the schema at run time (every PATCH it lists), so it is not a literal
  // the types can check here; the request still goes through openapi-fetch's own code.
  const untyped = client as unknown as Record<string, (p: string, o: object) => Promise<{ response: Response; data?: unknown; error?: unknown }>>;
  const options: Record<string, unknown> = { params: { path: params ?? {} } };
  if (body !== undefined) options.body = body;
  const { response, data, error } = await untyped[method](path, options);
  return { status: response.status, body: data ?? error ?? null };
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const request = JSON.parse(line) as Call | { method: "WEBHOOK_IDS" };
  const answer = request.method === "WEBHOOK_IDS" ? { status: 200, body: await firstWebhookIds() } : await call(request);
  process.stdout.write(JSON.stringify(answer) + "\n");
}
