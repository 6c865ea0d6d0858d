// Every input/output shape the TypeScript SDK's manifest can carry, for the ingress validation
// rules (tests/integration/test_payload_rules.py); the handler names say what they declare.
// Served over HTTP/1.1: node payloads.js PORT
"use strict";

require("./polyfill");

const http = require("node:http");
const restate = require("@restatedev/restate-sdk");

const { serde } = restate;
const personSchema = {
  // A hand-written Standard Schema (v1): validates {name: string} and carries a JSON schema.
  "~standard": {
    version: 1,
    vendor: "quill-tests",
    validate: (v) =>
      v && typeof v === "object" && typeof v.name === "string"
        ? { value: v }
        : { issues: [{ message: "expected an object with a string name", path: [] }] },
    jsonSchema: {
      input: () => ({ type: "object", properties: { name: { type: "string" } }, required: ["name"], title: "Person" }),
      output: () => ({ type: "object", properties: { name: { type: "string" } }, required: ["name"], title: "Person" }),
    },
  },
};
const custom = {
  contentType: "application/x-custom",
  serialize: (v) => new TextEncoder().encode(String(v)),
  deserialize: (d) => new TextDecoder().decode(d),
};
const text = {
  contentType: "text/plain",
  serialize: (v) => new TextEncoder().encode(v ?? ""),
  deserialize: (d) => new TextDecoder().decode(d),
};
const handler = restate.handlers.handler;
const payloads = restate.service({
  name: "TsPayloads",
  handlers: {
    noInput: async () => "no input",
    emptySerde: handler({ input: serde.empty }, async () => "empty serde"),
    optional: async (ctx, name) => `opt ${JSON.stringify(name)}`,
    standardSchema: handler({ input: serde.schema(personSchema) }, async (ctx, p) => `hi ${p.name}`),
    jsonSchema: handler(
      { input: new serde.JsonSerde({ type: "object", properties: { n: { type: "integer" } }, required: ["n"] }) },
      async (ctx, p) => p,
    ),
    binary: handler({ input: serde.binary, output: serde.binary }, async (ctx, b) => b.slice().reverse()),
    custom: handler({ input: custom, output: custom }, async (ctx, s) => `custom:${s}`),
    acceptText: handler({ accept: "text/*", input: serde.binary, output: text }, async (ctx, b) =>
      new TextDecoder().decode(b),
    ),
    emptyJson: async () => undefined,
    emptyJsonSet: handler({ setOutputContentTypeIfEmpty: true }, async () => undefined),
    emptyBinarySet: handler({ output: serde.binary, setOutputContentTypeIfEmpty: true }, async () => new Uint8Array(0)),
    voidSerdeSet: handler({ output: serde.empty, setOutputContentTypeIfEmpty: true }, async () => undefined),
    textOut: handler({ output: text }, async () => "plain text"),
  },
});

const port = Number(process.argv[2]);
const server = http.createServer(restate.createEndpointHandler({ services: [payloads] }));
server.listen(port, "127.0.0.1", () => console.log(`Listening on 127.0.0.1:${port}`));
