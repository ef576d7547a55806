import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { describe, test } from "node:test";
import { type DescMessage, type DescMethod, type JsonValue, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { CONFIG_VARIABLES } from "../../src/config.js";
import { ModelRegistrySP } from "../../src/gen/cogment/api/model_registry_pb.js";
import { HealthClient } from "../support/health-client.js";
import { startTestServer } from "../support/test-server.js";

const README = path.resolve(import.meta.dirname, "../../../README.md");
const API_DOC = path.resolve(import.meta.dirname, "../../../docs/api.md");

function between(text: string, start: string, end: string): string {
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  assert.ok(from >= 0 && to > from, `README has ${start} … ${end}`);
  return text.slice(from + start.length, to);
}

/** Splits concatenated JSON values ("{…} {…}") the way grpcurl reads -d. */
function parseJsonStream(text: string): JsonValue[] {
  const values: JsonValue[] = [];
  let depth = 0;
  let inString = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") {
      if (depth++ === 0) start = i;
    } else if (c === "}" && --depth === 0) {
      values.push(JSON.parse(text.slice(start, i + 1)) as JsonValue);
    }
  }
  return values;
}

interface Example {
  readonly data: JsonValue[];
  readonly method: string;
  readonly expected: { kind: "json"; values: JsonValue[] } | { kind: "error"; code: string; message: string };
}

function parseExamples(section: string): Example[] {
  const blocks = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1], body: m[2] ?? "" }));
  const examples: Example[] = [];
  for (let i = 0; i < blocks.length; i++) {
    const block = blocks[i];
    if (block?.lang !== "sh") continue;
    const command = /^grpcurl -plaintext -d '([^']*)' localhost:9000 ([\w.]+\/\w+)\n$/.exec(block.body);
    assert.ok(command, `grpcurl command in the README has the expected form: ${block.body}`);
    const output = blocks[i + 1];
    assert.ok(output !== undefined && output.lang !== "sh", `output after ${block.body}`);
    const error = /^ERROR:\n {2}Code: (\w+)\n {2}Message: (.*)\n$/.exec(output.body);
    examples.push({
      data: parseJsonStream(command[1] ?? ""),
      method: command[2] ?? "",
      expected: error
        ? { kind: "error", code: error[1] ?? "", message: error[2] ?? "" }
        : { kind: "json", values: parseJsonStream(output.body) },
    });
  }
  return examples;
}

/** grpcurl's names for status codes (Go's codes.Code String()). */
const GO_CODE_NAMES: Record<number, string> = { 3: "InvalidArgument", 5: "NotFound", 8: "ResourceExhausted" };

function replaceNow(value: JsonValue, expected: JsonValue): JsonValue {
  if (expected === "<now>") return "<now>";
  if (Array.isArray(value) && Array.isArray(expected)) return value.map((v, i) => replaceNow(v, expected[i] ?? null));
  if (value !== null && typeof value === "object" && !Array.isArray(value) && expected !== null && typeof expected === "object" && !Array.isArray(expected)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceNow(v as JsonValue, (expected[k] ?? null) as JsonValue)]));
  }
  return value;
}

async function call(client: grpc.Client, method: DescMethod, data: JsonValue[]): Promise<JsonValue[]> {
  const path = `/${method.parent.typeName}/${method.name}`;
  const serialize = (value: JsonValue): Buffer => Buffer.from(toBinary(method.input, fromJson(method.input, value)));
  const output: DescMessage = method.output;
  const deserialize = (bytes: Buffer): JsonValue => toJson(output, fromBinary(output, bytes));
  return new Promise((resolve, reject) => {
    const done = (error: grpc.ServiceError | null, value?: JsonValue): void => (error ? reject(error) : resolve([value ?? {}]));
    if (method.methodKind === "unary") {
      client.makeUnaryRequest(path, serialize, deserialize, data[0] ?? {}, done);
    } else if (method.methodKind === "client_streaming") {
      const stream = client.makeClientStreamRequest(path, serialize, deserialize, done);
      for (const value of data) stream.write(value);
      stream.end();
    } else {
      const stream = client.makeServerStreamRequest(path, serialize, deserialize, data[0] ?? {});
      const values: JsonValue[] = [];
      stream.on("data", (value: JsonValue) => {
        values.push(value);
        if (method.name === "VersionUpdate") {
          stream.cancel(); // grpcurl would keep waiting; the first message is what the README shows
          resolve(values);
        }
      });
      stream.on("error", (error: grpc.ServiceError) => (error.code === grpc.status.CANCELLED ? resolve(values) : reject(error)));
      stream.on("end", () => resolve(values));
    }
  });
}

async function healthCheck(address: string, request: JsonValue): Promise<JsonValue[]> {
  const client = new HealthClient(address);
  try {
    const service = (request as { service?: string } | null)?.service ?? "";
    return [{ status: await client.check(service) }];
  } finally {
    client.close();
  }
}

describe("README.md", () => {
  test("the configuration table is exactly src/config.ts's variables", async () => {
    const table = between(await readFile(README, "utf8"), "<!-- config-table:start", "<!-- config-table:end -->");
    const rows = table.split("\n").filter((line) => line.startsWith("| `"));
    assert.deepEqual(
      rows,
      CONFIG_VARIABLES.map((v) => `| \`${v.name}\` | \`${v.default}\` | ${v.accepted} | ${v.description} |`),
    );
  });

  test("every grpcurl example gives the output shown, on a fresh server", async (t) => {
    const section = between(await readFile(API_DOC, "utf8"), "<!-- grpcurl-examples:start -->", "<!-- grpcurl-examples:end -->");
    const examples = parseExamples(section);
    const covered = new Set(examples.map((e) => e.method));
    for (const method of ModelRegistrySP.methods) {
      assert.ok(covered.has(`cogmentAPI.ModelRegistrySP/${method.name}`), `docs/api.md has an example of ${method.name}`);
    }
    const server = await startTestServer();
    t.after(() => server.close());
    const client = new grpc.Client(server.address, grpc.credentials.createInsecure());
    t.after(() => client.close());
    for (const example of examples) {
      const [service, name] = example.method.split("/");
      let actual: Promise<JsonValue[]>;
      if (service === "grpc.health.v1.Health") {
        actual = healthCheck(server.address, example.data[0] ?? {});
      } else {
        const method = ModelRegistrySP.methods.find((m) => m.name === name);
        assert.ok(method, example.method);
        actual = call(client, method, example.data);
      }
      if (example.expected.kind === "error") {
        await assert.rejects(actual, (error: grpc.ServiceError) => {
          assert.equal(GO_CODE_NAMES[error.code], example.expected.kind === "error" ? example.expected.code : "");
          assert.equal(error.details, example.expected.kind === "error" ? example.expected.message : "");
          return true;
        });
      } else {
        const values = await actual;
        const expected = example.expected.values;
        assert.deepEqual(
          values.map((v, i) => replaceNow(v, expected[i] ?? null)),
          expected,
          `output of ${example.method} ${JSON.stringify(example.data)}`,
        );
      }
    }
  });
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");
}

describe("documentation links", () => {
  test("every relative link of README.md and docs/ names a file that exists, and a heading in it", async () => {
    const root = path.resolve(import.meta.dirname, "../../..");
    const pages = ["README.md", ...(await readdir(path.join(root, "docs"))).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
    assert.ok(pages.length >= 6, `README.md and the docs pages: ${pages.join(", ")}`);
    const broken: string[] = [];
    for (const page of pages) {
      const text = await readFile(path.join(root, page), "utf8");
      for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = match[1] ?? "";
        if (/^[a-z]+:/.test(target)) {
          continue; // https:, mailto:
        }
        const [file = "", anchor] = target.split("#");
        const resolved = file === "" ? path.join(root, page) : path.resolve(path.dirname(path.join(root, page)), file);
        let content: string;
        try {
          content = await readFile(resolved, "utf8");
        } catch {
          broken.push(`${page}: ${target} (no such file)`);
          continue;
        }
        if (anchor !== undefined) {
          const anchors = [...content.matchAll(/^#{1,6} (.*)$/gm)].map((m) => anchorOf(m[1] ?? ""));
          if (!anchors.includes(anchor)) {
            broken.push(`${page}: ${target} (no such heading)`);
          }
        }
      }
    }
    assert.deepEqual(broken, []);
  });
});
