// TypeScript-SDK services for quill's integration tests, served over HTTP/1.1 (request/response).
"use strict";

require("./polyfill");

const http = require("node:http");
const restate = require("@restatedev/restate-sdk");

const counter = restate.object({
  name: "TsCounter",
  handlers: {
    add: async (ctx, delta) => {
      const value = ((await ctx.get("value")) ?? 0) + delta;
      ctx.set("value", value);
      return value;
    },
    get: restate.handlers.object.shared(async (ctx) => (await ctx.get("value")) ?? 0),
  },
});

const greeter = restate.service({
  name: "TsGreeter",
  handlers: {
    greet: async (ctx, name) => {
      const count = await ctx.run("count", () => 1);
      return `Hello ${name} #${count}`;
    },
    addViaCounter: async (ctx, key) => ctx.objectClient(counter, key).add(10),
    nap: async (ctx, millis) => {
      await ctx.sleep(millis);
      return "rested";
    },
    // What StartMessage told the SDK (protocol v7): the request's scope, limit key, idempotency key.
    whoami: async (ctx) => {
      const request = ctx.request();
      return {
        scope: request.scope ?? null,
        limitKey: request.limitKey ?? null,
        idempotencyKey: request.idempotencyKey ?? null,
      };
    },
    // A call from a handler into a scope with a limit key (CallCommandMessage.scope / limit_key).
    callScoped: async (ctx, { scope, limitKey }) =>
      ctx.scope(scope).serviceClient({ name: "TsGreeter" }).whoami(restate.rpc.opts({ limitKey })),
  },
});

// Usage: node services.js PORT [h2]: "h2" serves with restate.serve() (HTTP/2 cleartext only, as most
// TypeScript services run), otherwise node:http with the endpoint handler (HTTP/1.1).
const port = Number(process.argv[2]);
if (process.argv[3] === "h2") {
  Promise.resolve(restate.serve({ services: [counter, greeter], port })).then(() =>
    console.log(`Listening on 127.0.0.1:${port} (h2c)`),
  );
} else {
  const server = http.createServer(restate.createEndpointHandler({ services: [counter, greeter] }));
  server.listen(port, "127.0.0.1", () => console.log(`Listening on 127.0.0.1:${port}`));
}
